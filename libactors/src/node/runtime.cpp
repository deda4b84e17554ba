#include "node/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include <unistd.h>

#include <caf/actor_system_config.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/scribe.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/detail/pool_core.hpp"
#include "actors/error.hpp"
#include "actors/runtime.hpp"
#include "base/deadline.hpp"
#include "link/manager.hpp"
#include "link/setup.hpp"
#include "net/listener.hpp"
#include "node/config.hpp"
#include "node/service_actor.hpp"
#include "shm/shared_memory.hpp"
#include "wire/node_context.hpp"
#include "wire/node_id.hpp"

namespace actors::detail {

namespace {

// BASP keys every connection by a port; ours are all handed over as already
// connected sockets, so they share one key that no real port uses.
constexpr std::uint16_t node_port_key = 1;

// The runtime of a child or peer process: never destroyed, the process ends
// with _exit.
std::atomic<runtime*> special_instance{nullptr};

// The owner's exit sequence, run where the destructor of a static made
// together with the owner's runtime runs (runtime::get).
struct exit_sequence {
  runtime* rt;
  ~exit_sequence() {
    rt->shutdown();
  }
};

} // namespace

runtime& runtime::get() {
  if (auto* rt = special_instance.load())
    return *rt;
  auto& role = process_role::local();
  if (role.lazy_child.load()) {
    // Connected like any child, only now.
    static std::once_flag lazy_start;
    std::call_once(lazy_start, [&role] {
      auto* rt = new runtime(role::child);
      role.parent = rt->link_to_parent(child_socket_fd);
      special_instance = rt;
    });
    return *special_instance.load();
  }
  if (role.lazy_peer.load()) {
    static std::once_flag peer_start;
    std::call_once(peer_start, [&role] {
      auto& owner = role.owner;
      role.parent = join(owner.host, owner.port, owner.key, bootstrap_timeout);
      if (role.on_joined)
        role.on_joined();
    });
    return *special_instance.load();
  }
  // Made on first use (on the caller's thread, so that a failure reaches
  // the caller) and never destroyed: a handle held by a global may be
  // released by a static destructor after the exit sequence, and must still
  // find CAF. The exit sequence runs where the owner's destructor would:
  // before the CAF and OpenSSL state made while it started (statics die in
  // reverse order of construction). A failed start is tried again at the
  // next call.
  static runtime* owner = new runtime{role::owner};
  static exit_sequence at_exit{owner};
  return *owner;
}

bool runtime::initialized() noexcept {
  return process_role::local().initialized.load();
}

bool runtime::started() noexcept {
  return process_role::local().runtime_started.load();
}

runtime::runtime(role r) : role_(r), config_(make_config()) {
  auto& this_process = process_role::local();
  if (role_ == role::peer && this_process.lazy_peer.load()) {
    // Heartbeats to the owner. Not CAF's connection timeout: the owner
    // sends none (its heartbeat interval would be set before any pool
    // names a lost_after), so a worker idle for lost_after would drop its
    // BASP connection and, with it, every message to the owner after (an
    // actor it runs the next time could not say that it runs). The kernel
    // watches the connection instead (join: watch_link).
    auto lost_after = this_process.owner.lost_after;
    auto every = std::chrono::duration_cast<caf::timespan>(lost_after / 4);
    config_->set("middleman.heartbeat-interval", every);
  }
  check_resources(*config_);
  this_process.runtime_started = true;
  try {
    system_ = std::make_unique<caf::actor_system>(*config_);
  } catch (const std::system_error& e) {
    throw error(errc::spawn_failed,
                std::string{"cannot start the actor system's threads: "}
                  + e.what()
                  + " (a limit on processes or address space: ulimit -u, "
                    "ulimit -v?)");
  }
  try {
    service_actor_ = system_->spawn(detail::service_actor, this);
    basp_ = system_->middleman().named_broker<caf::io::basp_broker>(
      caf::atom("BASP"));
    if (role_ != role::owner)
      return;
    key_ = make_secret();
    start_links();
    listener_ = std::make_unique<listener>(key_, [this](int fd, purpose p) {
      if (p == purpose::node)
        accept_node(fd);
      else
        ::close(fd); // workers and hubs come through a pool's listener
    });
  } catch (...) {
    // The system ends with this attempt (it waits for its actors).
    listener_.reset();
    if (links_)
      links_->shutdown(caf::exit_reason::user_shutdown);
    links_.reset();
    if (service_actor_)
      caf::anon_send_exit(service_actor_, caf::exit_reason::user_shutdown);
    service_actor_ = nullptr;
    basp_ = nullptr;
    system_.reset();
    throw;
  }
}

runtime::~runtime() {
  // nop: runtimes live as long as their process (see get and shutdown)
}

void runtime::on_child_started(std::function<void(std::uint64_t)> fn) {
  std::lock_guard<std::mutex> guard{hooks_mtx_};
  on_child_started_ = std::move(fn);
}

void runtime::child_started(std::uint64_t token) {
  std::function<void(std::uint64_t)> fn;
  {
    std::lock_guard<std::mutex> guard{hooks_mtx_};
    fn = on_child_started_;
  }
  if (fn)
    fn(token);
}

void runtime::at_shutdown(shutdown_step step, std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{hooks_mtx_};
  at_shutdown_.emplace_back(step, std::move(fn));
}

void runtime::run_shutdown_step(shutdown_step step) {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard<std::mutex> guard{hooks_mtx_};
    for (auto& [when, fn] : at_shutdown_)
      if (when == step)
        fns.push_back(fn);
  }
  for (auto& fn : fns)
    fn();
}

void runtime::shutdown() {
  // Python's exit sequence: live pools are terminated (their feeders would
  // start new workers), daemon children terminated, the others joined.
  exiting_ = true;
  pool_core::end_all();
  run_shutdown_step(shutdown_step::end_children);
  listener_.reset();
  run_shutdown_step(shutdown_step::stop_servers);
  std::vector<caf::actor> ours;
  {
    std::lock_guard<std::mutex> guard{services_mtx_};
    ours = services_;
  }
  ours.push_back(service_actor_);
  // The actor system is not destroyed: the static destructors that run
  // after this one may release the last handle to one of its actors (a
  // global queue, actor process or progress bar), which CAF can only do
  // while its system exists. Its threads idle until the process ends. Our
  // actors end now, and are waited for (at most 1 s), so that none of them
  // runs while the program's statics are destroyed. (On a fresh thread:
  // this one's thread-local storage may be gone, CAF's with it.)
  auto end_ours = [&] {
    caf::scoped_actor self{*system_};
    for (auto& a : ours)
      self->monitor(a);
    for (auto& a : ours)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    deadline until{std::chrono::seconds{1}};
    for (auto left = ours.size(); left > 0;) {
      bool late = false;
      self->receive([&](caf::down_msg&) { --left; },
                    caf::after(std::chrono::milliseconds{until.poll_ms()})
                      >> [&] { late = true; });
      if (late)
        break;
    }
  };
  try {
    std::thread{end_ours}.join();
  } catch (const std::system_error&) {
    for (auto& a : ours) // no thread to wait on: they end by themselves
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
}

void runtime::finish(int code) {
  // A child's own children are ended as at any program's exit.
  auto* rt = special_instance.load();
  if (rt != nullptr)
    rt->run_shutdown_step(shutdown_step::end_children);
  unlink_tracked_blocks(); // what std::atexit does in the user's program
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  auto& parent = process_role::local().parent;
  if (rt != nullptr && parent) {
    // BASP is one ordered stream: once the answer is back, every message this
    // process sent before has reached the owner's node.
    caf::scoped_actor self{rt->system()};
    self->request(parent, std::chrono::seconds{5}, bye_atom::value)
      .receive([] {}, [](caf::error&) {});
  }
  ::_exit(code);
}

std::uint16_t runtime::port() const {
  if (!listener_)
    throw error(errc::invalid_argument, "only the owner node listens");
  return listener_->port();
}

const listener& runtime::acceptor() const {
  if (!listener_)
    throw error(errc::invalid_argument, "only the owner node listens");
  return *listener_;
}

caf::proxy_registry* runtime::proxies() {
  if (links_)
    return &links_->registry();
  auto broker = caf::actor_cast<caf::abstract_actor*>(basp_);
  return static_cast<caf::io::basp_broker*>(broker)->proxy_registry_ptr();
}

void runtime::start_links() {
  links::manager::options opts;
  opts.service = service_actor_;
  opts.setup_timeout = bootstrap_timeout;
  // Actors of other hosts are BASP's.
  auto broker = caf::actor_cast<caf::abstract_actor*>(basp_);
  auto* basp = static_cast<caf::io::basp_broker*>(broker)->proxy_registry_ptr();
  opts.elsewhere = [basp](const caf::node_id& nid, caf::actor_id aid) {
    return basp->get_or_put(nid, aid);
  };
  links_ = links::manager::make(*system_, key_, std::move(opts));
  links_->set_death_reason([this](pid_t pid) { return how_ended(pid, true); });
  links_->set_self_name([] {
    return "process " + std::to_string(::getpid()) + " ("
           + process_role::local().name + ")";
  });
}

caf::error runtime::how_ended(pid_t pid, bool kill) {
  std::function<caf::error(pid_t, bool)> fn;
  {
    std::lock_guard<std::mutex> guard{hooks_mtx_};
    fn = child_death_;
  }
  if (fn)
    if (auto err = fn(pid, kill))
      return err;
  // A sibling or another relative: the parent (or its parent) reaped it.
  auto& parent = process_role::local().parent;
  if (!parent || local_pid(parent.node(), system_->node()) == pid)
    return {};
  caf::scoped_actor self{*system_};
  caf::error result;
  self
    ->request(parent, std::chrono::seconds{2}, ended_atom::value,
              static_cast<std::int32_t>(pid))
    .receive([&](bool known, caf::error& err) {
               if (known)
                 result = std::move(err);
             },
             [](caf::error&) {});
  return result;
}

void runtime::on_exit_to_proxy(
  std::function<bool(const caf::strong_actor_ptr&, const caf::strong_actor_ptr&,
                     const caf::exit_msg&)>
    hook,
  std::function<bool(const caf::actor_addr&)> guarded) {
  if (!links_)
    return;
  links_->set_exit_hook(std::move(hook));
  links_->set_guarded(std::move(guarded));
}

caf::actor runtime::link_to_parent(int fd) {
  auto deadline = std::chrono::steady_clock::now() + bootstrap_timeout;
  try {
    key_ = links::read_run_key(fd, deadline);
    start_links();
    auto parent = links_->adopt(fd);
    if (!parent)
      throw error(errc::owner_unreachable, "the parent node has no service");
    return parent;
  } catch (const error& e) {
    throw error(errc::owner_unreachable,
                std::string{"cannot join the parent node: "} + e.what());
  }
}

void runtime::hand_key(int fd) {
  links::send_run_key(fd, key_);
}

void runtime::adopt_child(int fd) {
  links_->adopt_later(fd);
}

void runtime::on_child_death(std::function<caf::error(pid_t, bool)> fn) {
  std::lock_guard<std::mutex> guard{hooks_mtx_};
  child_death_ = std::move(fn);
}

void runtime::accept_node(int fd, caf::actor published) {
  auto scribe = system_->middleman().backend().new_scribe(fd);
  caf::anon_send(basp_, caf::publish_atom::value, std::move(scribe),
                 node_port_key,
                 caf::actor_cast<caf::strong_actor_ptr>(
                   published ? published : service_actor_),
                 std::set<std::string>{});
}

caf::actor runtime::connect_node(int fd, std::chrono::milliseconds timeout) {
  auto scribe = system_->middleman().backend().new_scribe(fd);
  caf::scoped_actor self{*system_};
  caf::actor peer;
  std::string reason = "no answer";
  self
    ->request(basp_, timeout, caf::connect_atom::value, std::move(scribe),
              node_port_key)
    .receive(
      [&](caf::node_id&, caf::strong_actor_ptr& service,
          std::set<std::string>&) {
        peer = caf::actor_cast<caf::actor>(service);
      },
      [&](caf::error& err) { reason = system_->render(err); });
  if (!peer)
    throw error(errc::owner_unreachable, "cannot join the owner node: " + reason);
  return peer;
}

runtime& runtime::start_child(int fd) {
  auto* rt = new runtime(role::child);
  special_instance = rt;
  process_role::local().parent = rt->link_to_parent(fd);
  return *rt;
}

caf::actor runtime::join(const std::string& host, std::uint16_t port,
                         const secret& key, std::chrono::milliseconds timeout) {
  auto fd = connect_authenticated(host, port, key, purpose::node, timeout);
  auto& role = process_role::local();
  if (role.lazy_peer.load())
    watch_link(fd, role.owner.lost_after);
  if (special_instance.load() == nullptr)
    special_instance = new runtime(role::peer);
  return special_instance.load()->connect_node(fd, timeout);
}

void runtime::join_later(remote_owner where) {
  auto& role = process_role::local();
  role.owner = std::move(where);
  role.lazy_peer = true;
}

const runtime::remote_owner* runtime::owner_elsewhere() noexcept {
  auto& role = process_role::local();
  return role.lazy_peer.load() ? &role.owner : nullptr;
}

int runtime::take_channel() {
  return process_role::local().channel.exchange(-1);
}

namespace node_context {

bool started() noexcept {
  return runtime::started();
}

caf::actor_system& system() {
  return runtime::get().system();
}

caf::proxy_registry* proxies() {
  return runtime::get().proxies();
}

} // namespace node_context

} // namespace actors::detail

namespace actors {

std::uint16_t port() {
  return detail::runtime::get().port();
}

caf::actor_system& system() {
  return detail::runtime::get().system();
}

const std::string& current_process_name() {
  return detail::process_role::local().name;
}

} // namespace actors
