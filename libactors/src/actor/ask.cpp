#include "actors/ask.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include <caf/attachable.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/sec.hpp>

#include "link/manager.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

bool ask_over_link(const caf::actor& dest, caf::message msg,
                   std::optional<std::chrono::steady_clock::duration> timeout,
                   caf::expected<caf::message>& out) {
  if (!links::manager::callable(dest))
    return false;
  auto* links = runtime::get().links();
  if (links == nullptr)
    return false;
  using duration = std::chrono::steady_clock::duration;
  out = links->call(dest, std::move(msg),
                    timeout ? std::max(*timeout, duration::zero())
                            : duration::max());
  return true;
}

namespace {

// Sends the error answer of answer_watch.
class answer_on_exit final : public caf::attachable {
public:
  static constexpr size_t token_type = 0x61736b; // "ask"

  answer_on_exit(caf::weak_actor_ptr self, caf::message_id answer)
    : self_(std::move(self)), answer_(answer) {
    // nop
  }

  void actor_exited(const caf::error& reason,
                    caf::execution_unit* host) override {
    auto self = self_.lock();
    if (!self)
      return;
    caf::error err;
    if (reason == caf::exit_reason::remote_link_unreachable)
      err = make_error(errc::owner_unreachable,
                       "ask: the connection to the actor's node ended before "
                       "it answered (its process or its host is gone)");
    else if (errc_of(reason))
      err = reason;
    else
      err = make_error(caf::sec::request_receiver_down);
    self->enqueue(caf::make_mailbox_element(nullptr, answer_, {},
                                            std::move(err)),
                  host);
  }

  bool matches(const token& what) override {
    return what.subtype == token_type && what.ptr == this;
  }

private:
  caf::weak_actor_ptr self_;
  caf::message_id answer_;
};

} // namespace

answer_watch::answer_watch(const caf::actor& dest, caf::blocking_actor* self,
                           caf::message_id answer)
  : dest_(dest) {
  auto watch = std::make_unique<answer_on_exit>(self->ctrl(), answer);
  token_ = watch.get();
  dest_->attach(std::move(watch));
}

answer_watch::~answer_watch() {
  dest_->detach(caf::attachable::token{answer_on_exit::token_type, token_});
}

caf::error wrong_answer(const caf::message& answer) {
  auto text = caf::to_string(answer);
  if (text.size() > 200)
    text = text.substr(0, 200) + "...";
  return make_error(errc::type_mismatch,
                    "ask: the answer " + text
                      + " is not of the type asked for");
}

caf::error ask_failed(caf::error err) {
  if (err == caf::sec::unexpected_response)
    return wrong_answer(err.context());
  if (err == caf::sec::request_timeout)
    return make_error(errc::timeout, "ask: no answer in time");
  return err;
}

} // namespace actors::detail
