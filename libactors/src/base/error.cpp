#include "base/error.hpp"

#include <caf/atom.hpp>
#include <caf/make_message.hpp>

namespace actors {

namespace {

class category_impl final : public std::error_category {
public:
  const char* name() const noexcept override {
    return "actors";
  }

  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::already_started:
        return "already started";
      case errc::not_started:
        return "not started";
      case errc::already_running:
        return "cannot be changed after start";
      case errc::timeout:
        return "timed out";
      case errc::spawn_failed:
        return "could not start a process";
      case errc::function_not_found:
        return "function not found in this binary";
      case errc::owner_unreachable:
        return "owner unreachable";
      case errc::unauthenticated:
        return "peer did not prove the run's key";
      case errc::not_initialized:
        return "actors::init was not called first in main";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::queue_full:
        return "queue full";
      case errc::queue_empty:
        return "queue empty";
      case errc::closed:
        return "closed";
      case errc::too_many_task_done:
        return "task_done() called too many times";
      case errc::end_of_pipe:
        return "end of pipe";
      case errc::broken_pipe:
        return "broken pipe";
      case errc::wrong_direction:
        return "wrong direction for a one-way pipe end";
      case errc::type_mismatch:
        return "element type mismatch";
      case errc::task_failed:
        return "task failed";
      case errc::worker_lost:
        return "worker lost";
      case errc::pool_not_running:
        return "pool not running";
      case errc::pool_running:
        return "pool still running";
      case errc::terminated:
        return "pool terminated";
      case errc::pool_broken:
        return "pool broken";
      case errc::cancelled:
        return "cancelled";
      case errc::not_owner:
        return "not the owner of the lock";
      case errc::would_deadlock:
        return "would deadlock";
      case errc::actor_failed:
        return "actor failed";
      case errc::process_died:
        return "actor process died";
      case errc::connection_lost:
        return "connection lost";
      case errc::escalated:
        return "supervisor escalated";
      case errc::not_registered:
        return "message type not registered";
      case errc::name_taken:
        return "name taken";
      case errc::broken_barrier:
        return "broken barrier";
      case errc::buffer_too_short:
        return "buffer too short";
      case errc::not_found:
        return "not found";
    }
    return "unknown actors error";
  }
};

} // namespace

const std::error_category& category() noexcept {
  static const category_impl instance;
  return instance;
}

std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), category()};
}

error::error(errc code, const std::string& what)
  : std::system_error(make_error_code(code), what) {
  // nop
}

buffer_too_short::buffer_too_short(std::vector<char> bytes, std::size_t room)
  : error(errc::buffer_too_short,
          "recv_bytes_into: a message of " + std::to_string(bytes.size())
            + " bytes does not fit the " + std::to_string(room)
            + " bytes of the buffer after its offset"),
    message_(std::move(bytes)) {
  // nop
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<std::uint8_t>(code), caf::atom("actors"),
                    caf::make_message(std::move(what))};
}

std::optional<errc> errc_of(const caf::error& err) {
  if (!err || err.category() != caf::atom("actors"))
    return std::nullopt;
  return static_cast<errc>(err.code());
}

} // namespace actors
