#include "link/proxy.hpp"

#include <caf/locks.hpp>
#include <caf/sec.hpp>
#include <caf/system_messages.hpp>

#include "link/manager.hpp"

namespace actors::detail::links {

proxy::proxy(caf::actor_config& cfg, std::shared_ptr<peer> p)
    : caf::actor_proxy(cfg), peer_(std::move(p)) {
  // nop
}

proxy::~proxy() {
  // nop
}

std::shared_ptr<peer> proxy::get_peer() const {
  caf::shared_lock<caf::detail::shared_spinlock> guard{mtx_};
  return peer_;
}

caf::error proxy::dead_reason() const {
  caf::shared_lock<caf::detail::shared_spinlock> guard{mtx_};
  if (reason_)
    return reason_;
  return caf::sec::request_receiver_down;
}

void proxy::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  auto& content = what->content();
  if (content.match_elements<caf::exit_msg>()) {
    if (manager::in_link_frame()) {
      // Both actors' locks are held (manager.hpp): later, on the helper.
      if (auto p = get_peer(); p && p->mgr) {
        p->mgr->defer_exit(caf::strong_actor_ptr{ctrl()}, what->sender,
                           content.get_as<caf::exit_msg>(0));
        return;
      }
    }
    unlink_from(content.get_as<caf::exit_msg>(0).source);
    if (auto p = get_peer(); p && p->mgr
        && p->mgr->hook_exit(caf::strong_actor_ptr{ctrl()}, what->sender,
                             content.get_as<caf::exit_msg>(0)))
      return;
  }
  auto p = get_peer();
  if (!p) {
    // Ended: a request learns why at once; anything else goes nowhere, as
    // a message to any dead actor.
    if (what->mid.is_request() && what->sender)
      what->sender->enqueue(nullptr, what->mid.response_id(),
                            caf::make_message(dead_reason()), nullptr);
    return;
  }
  auto mgr = p->mgr;
  if (!mgr) { // the link ended a moment ago
    if (what->mid.is_request() && what->sender)
      what->sender->enqueue(nullptr, what->mid.response_id(),
                            caf::make_message(p->end_reason()), nullptr);
    return;
  }
  mgr->send(*p, id(), std::move(what));
}

bool proxy::add_backlink(caf::abstract_actor* x) {
  // Both actors' locks are held here: the frame is only queued.
  if (!monitorable_actor::add_backlink(x))
    return false;
  if (auto p = get_peer(); p && p->mgr && !p->mgr->guarded(address()))
    p->mgr->queue_link_op(*p, true, x, ctrl());
  return true;
}

bool proxy::remove_backlink(caf::abstract_actor* x) {
  if (!monitorable_actor::remove_backlink(x))
    return false;
  if (auto p = get_peer(); p && p->mgr && !p->mgr->guarded(address()))
    p->mgr->queue_link_op(*p, false, x, ctrl());
  return true;
}

void proxy::kill_proxy(caf::execution_unit* ctx, caf::error reason) {
  std::shared_ptr<peer> tmp;
  {
    std::unique_lock<caf::detail::shared_spinlock> guard{mtx_};
    tmp.swap(peer_);
    reason_ = reason;
  }
  cleanup(std::move(reason), ctx);
}

} // namespace actors::detail::links
