// What the opaque C handles hold.
#pragma once

#include <atomic>
#include <memory>

#include "../src/backend.hpp"

struct slstm_model {
  slstm::ModelPtr model;
};

struct slstm_session {
  slstm::ModelPtr model;  // keeps the model alive for as long as the session
  slstm::SessionConfig config;
  std::unique_ptr<slstm::Backend> backend;
  std::atomic<bool> busy{false};  // a forward/step call is running (see SessionCall)
};
