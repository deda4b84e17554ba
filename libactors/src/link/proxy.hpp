#pragma once

// The handle of an actor in another process of this host, as CAF sees it:
// a caf::actor_proxy whose enqueue serializes the message in the sending
// thread and writes one frame into the link to that process (manager.hpp),
// with no broker, multiplexer or other thread between the sender and the
// ring. Made by the manager's proxy registry backend for every actor
// handle read from a link.
//
// Links: CAF calls add_backlink/remove_backlink while it holds the locks of
// both actors; serializing the linking actor there would take its lock
// again (through the actor registry) and hang. So link and unlink frames
// are written by the manager's helper actor, as forwarding_actor_proxy
// hands them to the BASP broker. An exit_msg unlinks first, as there.
//
// Ending: kill_proxy (the actor's `down` frame, or its link's end) ends the
// proxy with that reason; a request sent to it afterwards is answered at
// once with that reason, never left to its timeout.

#include <memory>

#include <caf/actor_proxy.hpp>
#include <caf/detail/shared_spinlock.hpp>

namespace actors::detail::links {

struct peer;

class proxy final : public caf::actor_proxy {
public:
  proxy(caf::actor_config& cfg, std::shared_ptr<peer> p);

  ~proxy() override;

  void enqueue(caf::mailbox_element_ptr what,
               caf::execution_unit* context) override;

  bool add_backlink(caf::abstract_actor* x) override;

  bool remove_backlink(caf::abstract_actor* x) override;

  void kill_proxy(caf::execution_unit* ctx, caf::error reason) override;

  const char* name() const override {
    return "link_proxy";
  }

  /// The link's CAF side this proxy writes to; null once killed.
  std::shared_ptr<peer> get_peer() const;

  /// What a request to this proxy gets once it is dead (its peer gone):
  /// the reason it was killed with, or sec::request_receiver_down for an
  /// actor that ended normally. Set together with the peer, so never empty
  /// once get_peer() is (CAF's fail_state() follows a moment later).
  caf::error dead_reason() const;

private:
  mutable caf::detail::shared_spinlock mtx_;
  std::shared_ptr<peer> peer_;
  caf::error reason_; // once killed
};

} // namespace actors::detail::links
