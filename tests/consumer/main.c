/* Links against an installed libstacklstm and checks the versions agree. */
#include <stdio.h>
#include <string.h>

#include "stacklstm/stacklstm.h"

int main(void) {
  if (slstm_version_number() != SLSTM_VERSION_NUMBER) {
    fprintf(stderr, "header %s vs library %s\n", SLSTM_VERSION_STRING, slstm_version_string());
    return 1;
  }
  printf("consumer ok: libstacklstm %s, CPU backend %s\n", slstm_version_string(),
         slstm_backend_available(SLSTM_BACKEND_CPU) == SLSTM_OK ? "available" : "missing");
  return 0;
}
