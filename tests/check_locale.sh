#!/bin/sh
# Runs the suite's [locale] cases (tests/test_locale.cpp) under a comma-decimal locale made
# here: de_DE.UTF-8 compiled with localedef into <dir>/locale and found through LOCPATH, so
# the machine needs no generated locales (only the `locales` package's sources; .ci installs
# it). Exit 77 (ctest: skipped, with the reason) where localedef or the sources are missing.
# Usage: check_locale.sh <slstm_tests> <dir>
set -eu
tests=$1
dir=$2/locale
if ! command -v localedef >/dev/null 2>&1 || [ ! -f /usr/share/i18n/locales/de_DE ]; then
  echo "SKIPPED: no localedef or no /usr/share/i18n/locales/de_DE (Debian package locales)"
  exit 77
fi
if [ ! -d "$dir/de_DE.UTF-8" ]; then
  mkdir -p "$dir"
  # (exit status 1 with warnings is usual for localedef; the directory is what counts)
  localedef -i de_DE -f UTF-8 "$dir/de_DE.UTF-8" >/dev/null 2>&1 || true
fi
if [ ! -d "$dir/de_DE.UTF-8" ]; then
  echo "localedef made no de_DE.UTF-8 under $dir" >&2
  exit 1
fi
LOCPATH=$dir SLSTM_TEST_LOCALE=de_DE.UTF-8 exec "$tests" "[locale]"
