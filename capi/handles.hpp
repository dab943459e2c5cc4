// What the opaque C handles hold.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "../src/backend.hpp"

struct slstm_model {
  slstm::ModelPtr model;
};

// The backend-neutral part of a session's stream slots (header "Stream slots"), allocated
// with the session; the states themselves are the backend's (slstm::SlotStates).
struct SlotTable {
  std::int64_t max_slots = 0;
  std::int64_t open_count = 0;
  std::vector<unsigned char> open;  // [max_slots]: 1 = open
  std::int64_t first_free = 0;      // every slot below it is open (open() searches from it)
  // Duplicate detection without a per-call allocation: a call takes a new `generation` and
  // stamps each slot it names with it (mark) and with the row that named it (mark_row); a
  // slot already stamped with the call's generation is named twice.
  std::vector<std::uint64_t> mark;       // [max_slots]
  std::vector<std::int64_t> mark_row;    // [max_slots]
  std::uint64_t generation = 0;
};

struct slstm_session {
  slstm::ModelPtr model;  // keeps the model alive for as long as the session
  slstm::SessionConfig config;
  std::unique_ptr<slstm::Backend> backend;
  SlotTable slots;
  std::unique_ptr<slstm::SlotStates> slot_states;  // null when max_slots is 0; declared
                                                   // after backend: destroyed before it
  mutable std::atomic<bool> busy{false};  // a call is running (see SessionCall)
};
