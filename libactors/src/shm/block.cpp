// Shared blocks (actors/shared_memory.hpp): a memfd of the making process,
// its first 64 bytes a header with the block's random id, mapped by each
// process that receives a handle through /proc/PID/fd/N.

#include "actors/shared_memory.hpp"

#include "base/random.hpp"
#include "shm/shared_memory.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include <unistd.h>

namespace actors::detail {

namespace {

// The header before the bytes: the id, then padding to keep the bytes
// aligned for any type.
constexpr std::size_t header_size = 64;

std::size_t mapped_size(std::uint64_t size) {
  return header_size + static_cast<std::size_t>(size);
}

} // namespace

struct shared_block::state {
  unique_fd fd;       // the maker's: names the block to others
  mapping memory;     // header + bytes
  std::string why;    // why there is no mapping, if there is none
};

shared_block shared_block::make(std::size_t size) {
  if (size > (std::size_t{1} << 46))
    throw error(errc::invalid_argument,
                "a shared block of " + std::to_string(size)
                  + " bytes is too large");
  auto made = make_shared_memory("actors-shared", mapped_size(size));
  if (!made.memory)
    throw error(errc::spawn_failed,
                "cannot make " + std::to_string(size)
                  + " bytes of shared memory: " + std::strerror(errno));
  shared_block result;
  result.ref_.pid = static_cast<std::int32_t>(::getpid());
  result.ref_.fd = made.fd.get();
  result.ref_.id = random_value<std::uint64_t>();
  result.ref_.size = size;
  std::memcpy(made.memory.get(), &result.ref_.id, sizeof(result.ref_.id));
  result.state_ = std::make_shared<state>();
  result.state_->fd = std::move(made.fd);
  result.state_->memory = std::move(made.memory);
  return result;
}

void shared_block::attach() {
  state_ = std::make_shared<state>();
  if (ref_.fd < 0)
    return; // an empty handle
  auto& why = state_->why;
  if (ref_.size > (std::uint64_t{1} << 46)) {
    why = "its size is not a block's";
    return;
  }
  auto memory = map_peer_memory(ref_.pid, ref_.fd, mapped_size(ref_.size), why);
  if (!memory)
    return;
  std::uint64_t id;
  std::memcpy(&id, memory.get(), sizeof(id));
  if (id != ref_.id) {
    why = "its memory is not there";
    return;
  }
  state_->memory = std::move(memory);
}

std::byte* shared_block::data() const {
  if (!state_ || ref_.fd < 0)
    throw error(errc::invalid_argument, "the shared memory handle is empty");
  if (!state_->memory)
    throw error(errc::owner_unreachable,
                "the shared memory made by process "
                  + std::to_string(ref_.pid)
                  + " cannot be mapped here: " + state_->why
                  + " (its maker dropped it or ended, or this is another "
                    "host)");
  return static_cast<std::byte*>(state_->memory.get()) + header_size;
}

} // namespace actors::detail
