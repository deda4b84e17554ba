// The manager's links themselves: made over an inherited socket, by name
// (on the caller's thread, or on the setup thread for a handle of a process
// not linked yet, and for connections accepted), and watched for their end
// (the watcher thread: a link's socket ends when its peer does).

#include "link/manager.hpp"

#include <algorithm>
#include <cerrno>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

#include "base/error.hpp"
#include "base/process_end.hpp"
#include "wire/node_id.hpp"

namespace actors::detail::links {

namespace {

using clock = std::chrono::steady_clock;

} // namespace

// -- making links
// ----------------------------------------------------------------

std::shared_ptr<peer> manager::add_link(connection c) {
  auto p = std::make_shared<peer>();
  p->node = c.node;
  p->pid = local_pid(c.node, sys_.node());
  p->mgr = shared_from_this();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_) {
      ::close(c.fd);
      throw error(errc::owner_unreachable, "the links are shut down");
    }
    p->lnk = std::make_shared<link>(*this, c.node, next_link_id_++);
    links_.emplace(p->lnk->id(), p);
    // The first link to a process carries what this side sends to it.
    peers_.emplace(c.node, p);
  }
  auto fd = c.fd;
  auto id = p->lnk->id();
  try {
    p->lnk->start(std::move(c));
  } catch (const error&) {
    link_ended(*p, p->lnk->reason());
    std::lock_guard<std::mutex> guard{mtx_};
    links_.erase(id);
    throw;
  }
  post([this, fd, id] {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = id;
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_ADD, fd, &ev);
  });
  return p;
}

caf::actor manager::adopt(int fd) {
  auto c
      = setup_inherited(fd, me(), &unit_, clock::now() + opts_.setup_timeout);
  auto node = c.node;
  auto service = c.service;
  add_link(std::move(c));
  if (service == 0)
    return {};
  return caf::actor_cast<caf::actor>(registry_.get_or_put(node, service));
}

void manager::adopt_later(int fd) {
  std::uint64_t tag = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_) {
      ::close(fd);
      return;
    }
    tag = next_link_id_++;
    silent_.emplace(tag, fd);
  }
  // Added on the watcher's thread, as links are (it owns the set's
  // registrations); the first event (the child's hello, or its end) hands
  // the socket to the setup thread.
  post([this, fd, tag] { poller_.add(fd, EPOLLIN | EPOLLRDHUP, tag); });
}

caf::actor manager::connect(pid_t pid) {
  auto c = setup_connect(link_address(key_, pid), key_, me(), &unit_,
                         clock::now() + opts_.setup_timeout);
  auto node = c.node;
  auto service = c.service;
  add_link(std::move(c));
  if (service == 0)
    return {};
  return caf::actor_cast<caf::actor>(registry_.get_or_put(node, service));
}

std::shared_ptr<peer> manager::peer_for(const caf::node_id& node) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = peers_.find(node); i != peers_.end())
    return i->second;
  auto p = std::make_shared<peer>();
  p->node = node;
  p->pid = local_pid(node, sys_.node());
  p->mgr = shared_from_this();
  p->lnk = std::make_shared<link>(*this, node, next_link_id_++);
  if (stopping_) {
    p->lnk->fail(caf::exit_reason::remote_link_unreachable);
    return p;
  }
  if (p->pid == 0) {
    // Links reach processes of this host (and network namespace) only.
    p->lnk->fail(
        make_error(errc::owner_unreachable, "no link can reach actor node "
                                                + caf::to_string(node)
                                                + ": it runs on another host"));
    return p;
  }
  links_.emplace(p->lnk->id(), p);
  peers_.emplace(node, p);
  jobs_.push_back(job{p, -1});
  jobs_cv_.notify_one();
  return p;
}

void manager::setup_loop() {
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      jobs_cv_.wait(guard, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_)
        return;
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    auto deadline = clock::now() + opts_.setup_timeout;
    if (j.inherited) {
      try {
        add_link(setup_inherited(j.fd, me(), &unit_, deadline));
      } catch (const error&) {
        // The child ended, or never made its links: nothing was made.
      }
      continue;
    }
    if (j.fd >= 0) {
      try {
        add_link(finish_accept(j.fd, j.sent, key_, me(), &unit_,
                               std::min(deadline,
                                        clock::now() + hello_deadline)));
      } catch (const error&) {
        // A stranger, or a peer that gave up: nothing was made.
      }
      continue;
    }
    auto& p = *j.target;
    try {
      auto c = setup_connect(link_address(key_, p.pid), key_, me(), &unit_,
                             deadline);
      if (c.node != p.node) {
        ::close(c.fd);
        throw error(errc::owner_unreachable,
                    "process " + std::to_string(p.pid)
                        + " is not the actor node it should be");
      }
      auto fd = c.fd;
      auto id = p.lnk->id();
      p.lnk->start(std::move(c));
      post([this, fd, id] {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = id;
        ::epoll_ctl(poller_.fd(), EPOLL_CTL_ADD, fd, &ev);
      });
    } catch (const error& e) {
      // A peer that died while its link was being made ended as one whose
      // link broke: its end is the reason, not that it could not be reached
      // (its connections close a moment before it has ended: 100 ms).
      auto reason = wait_for_end(p.pid, std::chrono::milliseconds{100})
                        ? end_of(p.pid)
                        : make_error(static_cast<errc>(e.code().value()),
                                     "no link to process "
                                         + std::to_string(p.pid) + ": "
                                         + e.what());
      p.lnk->fail(reason);
      link_ended(p, reason);
    }
  }
}

void manager::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    posted_.push_back(std::move(fn));
  }
  poller_.wake();
}

void manager::watch_stranger(int fd) {
  nonce sent;
  try {
    sent = begin_accept(fd);
  } catch (const error&) {
    ::close(fd); // another user's process: nothing to say to it
    return;
  }
  std::lock_guard<std::mutex> guard{mtx_};
  if (strangers_.size() >= max_strangers) {
    auto oldest = strangers_.begin();
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, oldest->second.fd, nullptr);
    ::close(oldest->second.fd);
    strangers_.erase(oldest);
  }
  auto tag = next_link_id_++;
  strangers_.emplace(tag, stranger{fd, sent, clock::now() + hello_deadline});
  poller_.add(fd, EPOLLIN | EPOLLRDHUP, tag);
}

int manager::expire_strangers() {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  while (!strangers_.empty() && strangers_.begin()->second.due <= now) {
    auto first = strangers_.begin();
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, first->second.fd, nullptr);
    ::close(first->second.fd);
    strangers_.erase(first);
  }
  if (strangers_.empty())
    return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(
    strangers_.begin()->second.due - now);
  return static_cast<int>(std::max<std::int64_t>(left.count(), 1));
}

void manager::watch_loop() {
  epoll_event events[32];
  for (;;) {
    auto n = ::epoll_wait(poller_.fd(), events, 32, expire_strangers());
    if (n < 0 && errno != EINTR)
      return;
    for (int i = 0; i < n; ++i) {
      auto tag = events[i].data.u64;
      if (tag == wake_tag) {
        poller_.drain_wake();
        std::vector<std::function<void()>> todo;
        {
          std::lock_guard<std::mutex> guard{mtx_};
          if (stopping_)
            return;
          todo.swap(posted_);
        }
        for (auto& fn : todo)
          fn();
        continue;
      }
      if (tag == listen_tag) {
        for (;;) {
          auto fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
              continue;
            break;
          }
          watch_stranger(fd);
        }
        continue;
      }
      std::shared_ptr<peer> p;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (auto j = links_.find(tag); j != links_.end()) {
          p = j->second;
        } else if (auto k = silent_.find(tag); k != silent_.end()) {
          ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, k->second, nullptr);
          jobs_.push_back(job{nullptr, k->second, true});
          silent_.erase(k);
          jobs_cv_.notify_one();
        } else if (auto s = strangers_.find(tag); s != strangers_.end()) {
          // It sent something (or hung up): the setup thread reads it.
          ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, s->second.fd, nullptr);
          jobs_.push_back(job{nullptr, s->second.fd, false, s->second.sent});
          strangers_.erase(s);
          jobs_cv_.notify_one();
        }
      }
      if (!p)
        continue;
      char byte;
      auto r = ::recv(p->lnk->fd(), &byte, 1, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, p->lnk->fd(), nullptr);
      if (r > 0)
        p->lnk->close(caf::make_error(caf::sec::malformed_basp_message,
                                      "link protocol error: bytes on the "
                                      "socket after the setup"));
      else
        p->lnk->peer_gone(caf::error{}); // the reason: on_closed
    }
  }
}

} // namespace actors::detail::links
