// What the opaque C handles hold.
#pragma once

#include <memory>

#include "../src/backend.hpp"

struct slstm_model {
  slstm::ModelPtr model;
};

struct slstm_session {
  slstm::ModelPtr model;  // keeps the model alive for as long as the session
  slstm::SessionConfig config;
  std::unique_ptr<slstm::Backend> backend;
};

namespace slstm::capi {

// struct_size check for option/argument structs: too small is an invalid argument, larger
// than this library knows means the caller was built against a newer header.
inline void check_struct_size(std::uint32_t given, std::size_t known, const char* name) {
  if (given < known) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         std::string(name) + "->struct_size is " + std::to_string(given) + ", expected " +
             std::to_string(known) + " (initialise the struct with its _init function)");
  }
  if (given > known) {
    fail(SLSTM_ERR_UNSUPPORTED,
         std::string(name) + "->struct_size is " + std::to_string(given) +
             ": the caller was built against a newer libstacklstm than this " +
             SLSTM_VERSION_STRING);
  }
}

}  // namespace slstm::capi
