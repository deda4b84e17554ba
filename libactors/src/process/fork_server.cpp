#include "process/fork_server.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/deadline.hpp"
#include "base/fd.hpp"
#include "process/child_main.hpp"

#if defined(__SANITIZE_THREAD__)
#  define ACTORS_NO_FORK_SERVER 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define ACTORS_NO_FORK_SERVER 1
#  endif
#endif

namespace actors::detail::fork_server {

namespace {

// A request: the token and whether a channel comes along, plus the
// descriptors stdin, stdout, stderr, socket, lifeline, working directory
// [, channel]: the child gets the owner's current ones.
struct request {
  std::uint64_t token;
  std::uint32_t name_size; // the name, then the task follow (inline tasks)
  std::uint32_t task_size; // 0: the child asks the owner for its task
  std::uint8_t channel;
};

// The answer to a request: the child's pid, sent by the child itself
// before it does anything else (so a server stopped right after the fork
// still answers), or -1, sent by the server when it could not fork. A
// child whose answer cannot be sent (the owner gave up on the server and
// shut its end) exits at once: an abandoned request never runs.
struct reply {
  std::uint64_t token;
  std::int32_t pid;
  std::int32_t unused;
};

// How long the owner waits for an answer: a healthy server answers in
// about a millisecond; one that is stopped (SIGSTOP) or starved does not,
// and start() must still keep its promise (a child within 10 s), so the
// owner gives up on it and starts children by exec from then on.
constexpr auto answer_bound = std::chrono::seconds{2};

constexpr std::size_t max_name = 1024;

constexpr int max_fds = 7;

std::mutex mtx;      // one request at a time
int server_fd = -1;  // our end; -1 without a server
// Our end of the orphans' socket: a child the server forked whose answer
// could not be sent (we gave up on the server) sends its pid here before
// it exits, so that it is reaped rather than left a zombie of ours (it is
// our child: CLONE_PARENT). Read once the server is given up on.
int orphans_fd = -1;
int server_pidfd = -1; // no pid-reuse race when ending it
pid_t server_pid = -1;

// Kills the server and collects it, waiting 1 s at most: a SIGKILLed
// process ends at once, even a stopped one, but a starved one may need
// longer; then reap_orphans collects it. Under `mtx`.
void kill_server() {
  if (server_pidfd < 0)
    return;
  ::syscall(SYS_pidfd_send_signal, server_pidfd, SIGKILL, nullptr, 0);
  pollfd p{server_pidfd, POLLIN, 0};
  while (::poll(&p, 1, 1000) < 0 && errno == EINTR) {
  }
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(server_pidfd), &info,
               WEXITED | WNOHANG)
        == 0
      && info.si_pid != 0) {
    ::close(server_pidfd);
    server_pidfd = -1;
  }
}

// Reaps, on a thread of its own, what is left of a server given up on: the
// server itself if it has not ended yet, and the children it had forked
// whose answers could not be sent: each sends its pid, then exits. The
// thread ends when every holder of the socket's other end is gone (the
// server, and its children: they close it once they have answered).
// Without a thread (at the limit of threads), what came already is reaped.
// Once, after the server was given up on; under `mtx`.
void reap_orphans() {
  auto server = std::exchange(server_pidfd, -1);
  auto orphans = std::exchange(orphans_fd, -1);
  auto reap = [](int pidfd, int fd, bool block) {
    if (pidfd >= 0) {
      siginfo_t info{};
      ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info,
               WEXITED | (block ? 0 : WNOHANG));
      ::close(pidfd);
    }
    if (fd < 0)
      return;
    std::int32_t pid;
    ssize_t n;
    while ((n = ::recv(fd, &pid, sizeof(pid), block ? 0 : MSG_DONTWAIT)) > 0
           || (n < 0 && errno == EINTR))
      if (n == static_cast<ssize_t>(sizeof(pid)) && pid > 0)
        ::waitpid(pid, nullptr, 0); // it exits right after it sent
    ::close(fd);
  };
  if (server < 0 && orphans < 0)
    return;
  try {
    std::thread{[=] { reap(server, orphans, true); }}.detach();
  } catch (const std::system_error&) {
    reap(server, orphans, false);
  }
}

// Forgets the server, which is gone or failed us: children are spawned
// from now on. Under `mtx`.
void end_server() {
  ::close(server_fd);
  server_fd = -1;
  kill_server();
  reap_orphans();
}

// Gives up on a server that did not answer the request `token`: ends it,
// shuts our end (a child it forked that has not answered yet then fails to
// and exits), and returns the pid of a child that did answer meanwhile, or
// -1. Under `mtx`.
pid_t abandon_server(std::uint64_t token) {
  kill_server();
  ::shutdown(server_fd, SHUT_RD);
  pid_t result = -1;
  reply answer{};
  ssize_t n;
  while ((n = ::recv(server_fd, &answer, sizeof(answer), MSG_DONTWAIT)) > 0
         || (n < 0 && errno == EINTR))
    if (n == static_cast<ssize_t>(sizeof(answer)) && answer.token == token)
      result = answer.pid;
  ::close(server_fd);
  server_fd = -1;
  reap_orphans();
  return result;
}

// The signals the server blocks, so that ^C or a hangup meant for the
// program does not take the server down before the program. Blocked, not
// ignored: a child inherits the mask, and a signal sent to it before it
// unblocks them waits instead of being lost.
constexpr int held[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE};

// Moves `fd` onto `target` (not close-on-exec: the child role inherits it).
void place(int fd, int target) {
  if (fd != target) {
    ::dup2(fd, target);
    ::close(fd);
  } else {
    ::fcntl(fd, F_SETFD, 0);
  }
}

// The program's name, which the server's children take back.
char program_name[16];

// The server's end of the orphans' socket (see orphans_fd).
int orphans_end = -1;

[[noreturn]] void become_child(int sock, const request& req, const char* name,
                               const char* task, int* fds, int nfds) {
  reply answer{req.token, static_cast<std::int32_t>(::syscall(SYS_getpid)), 0};
  ssize_t sent;
  while ((sent = ::send(sock, &answer, sizeof(answer), MSG_NOSIGNAL)) < 0
         && errno == EINTR) {
  }
  if (sent != static_cast<ssize_t>(sizeof(answer))) {
    // The owner gave up on this request: it reaps this process once told.
    std::int32_t self = answer.pid;
    while (::send(orphans_end, &self, sizeof(self), MSG_NOSIGNAL) < 0
           && errno == EINTR) {
    }
    ::_exit(0);
  }
  ::close(sock);
  ::close(orphans_end);
  ::prctl(PR_SET_NAME, program_name);
  // Out of the way of 3..5 first, then onto them.
  for (int i = 0; i < nfds; ++i)
    if (fds[i] < 16) {
      auto moved = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
      ::close(fds[i]);
      fds[i] = moved;
    }
  if (::fchdir(fds[5]) != 0) {
    // keep the server's directory
  }
  ::close(fds[5]);
  for (int i = 0; i < 3; ++i)
    place(fds[i], i);
  place(fds[3], 3);
  place(fds[4], 4);
  if (req.channel != 0)
    place(fds[6], 5);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // This thread is a raw clone of the server's: glibc's record of it (its
  // thread id, its list of robust mutexes) is still the server's, so the
  // child runs on a thread of its own, which glibc sets up properly.
  try {
    std::thread{[&req, name, task] {
      if (req.task_size > 0)
        enter_lazy_child(req.channel != 0, task, req.task_size,
                         std::string(name, req.name_size));
      enter_child(req.token, req.channel != 0);
    }}.join();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "libactors child %d: cannot start its thread: %s\n",
                 static_cast<int>(::getpid()), e.code().message().c_str());
  }
  ::_exit(1); // not reached unless the thread could not start
}

// (Unused where forking without exec is unsafe: see start().)
[[noreturn, maybe_unused]] void serve(int sock, int orphans, pid_t owner) {
  orphans_end = orphans;
  // Goes when the owner goes (and reads the end of its socket then).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != owner)
    ::_exit(0);
  sigset_t mask;
  sigemptyset(&mask);
  for (int signo : held)
    sigaddset(&mask, signo);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::prctl(PR_GET_NAME, program_name);
  ::prctl(PR_SET_NAME, "actors-fork-srv");
  // Never freed: the server and its children live on it.
  static char buffer[sizeof(request) + max_name + max_inline_task];
  for (;;) {
    request req{};
    iovec iov{buffer, sizeof(buffer)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    auto n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      ::_exit(0); // the owner is gone
    int fds[max_fds];
    int nfds = 0;
    for (auto* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        nfds = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        std::memcpy(fds, CMSG_DATA(c), sizeof(int) * nfds);
      }
    pid_t pid = -1;
    if (n >= static_cast<ssize_t>(sizeof(req)))
      std::memcpy(&req, buffer, sizeof(req));
    auto expected = sizeof(req) + req.name_size + req.task_size;
    if (static_cast<std::size_t>(n) == expected && (msg.msg_flags & MSG_TRUNC) == 0
        && nfds == (req.channel != 0 ? 7 : 6)) {
      // A child of the owner, not of this server; it answers by itself.
      pid = static_cast<pid_t>(
        ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr,
                  0));
      if (pid == 0)
        become_child(sock, req, buffer + sizeof(req),
                     buffer + sizeof(req) + req.name_size, fds, nfds);
    }
    for (int i = 0; i < nfds; ++i)
      ::close(fds[i]);
    if (pid > 0)
      continue;
    reply failed{req.token, -1, 0};
    while (::send(sock, &failed, sizeof(failed), MSG_NOSIGNAL) < 0
           && errno == EINTR) {
    }
  }
}

} // namespace

void start() {
#ifndef ACTORS_NO_FORK_SERVER
  if (auto* env = std::getenv("ACTORS_FORK_SERVER"); env && *env == '0')
    return;
  // No lock: this process has a single thread now, and the server's copy
  // of a held lock would stay held in every child.
  if (server_fd >= 0)
    return;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return;
  unique_fd ours{sv[0]};
  unique_fd theirs{sv[1]};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return;
  unique_fd orphans_ours{sv[0]};
  unique_fd orphans_theirs{sv[1]};
  auto owner = ::getpid();
  auto pid = ::fork();
  if (pid == 0) {
    ours.reset();
    orphans_ours.reset();
    serve(theirs.release(), orphans_theirs.release(), owner);
  }
  theirs.reset();
  orphans_theirs.reset();
  if (pid < 0)
    return;
  server_fd = ours.release();
  orphans_fd = orphans_ours.release();
  server_pid = pid;
  server_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#endif
}

pid_t pid() {
  std::lock_guard<std::mutex> guard{mtx};
  return server_fd >= 0 ? server_pid : -1;
}

pid_t spawn(std::uint64_t token, int socket, int lifeline, int channel,
            const std::vector<char>* task, const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx};
  if (server_fd < 0)
    return -1;
  for (int fd = 0; fd < 3; ++fd)
    if (::fcntl(fd, F_GETFD) < 0)
      return -1; // a closed standard descriptor cannot be passed on
  unique_fd cwd{::open(".", O_PATH | O_CLOEXEC)};
  if (!cwd)
    return -1;
  if (task != nullptr
      && (task->size() > max_inline_task || name.size() > max_name))
    return -1;
  request req{};
  req.token = token;
  req.channel = channel >= 0;
  if (task != nullptr) {
    req.name_size = static_cast<std::uint32_t>(name.size());
    req.task_size = static_cast<std::uint32_t>(task->size());
  }
  int fds[max_fds] = {0, 1, 2, socket, lifeline, cwd.get(), channel};
  int nfds = channel >= 0 ? 7 : 6;
  iovec iov[3] = {{&req, sizeof(req)},
                  {const_cast<char*>(name.data()), req.name_size},
                  {task != nullptr ? const_cast<char*>(task->data()) : nullptr,
                   req.task_size}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 3;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
  auto* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  // Never blocks: one request at a time leaves the socket's buffer free.
  ssize_t n;
  while ((n = ::sendmsg(server_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0
         && errno == EINTR) {
  }
  cwd.reset();
  if (n != static_cast<ssize_t>(sizeof(req) + req.name_size + req.task_size)) {
    // The server is gone: spawn from now on.
    end_server();
    return -1;
  }
  deadline answer_by{answer_bound};
  for (;;) {
    reply answer{};
    n = ::recv(server_fd, &answer, sizeof(answer), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == static_cast<ssize_t>(sizeof(answer)) && answer.token == token)
      return answer.pid;
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      // The server is gone (or failed us): spawn from now on.
      end_server();
      return -1;
    }
    pollfd p{server_fd, POLLIN, 0};
    if (!answer_by.passed() && ::poll(&p, 1, answer_by.poll_ms()) != 0)
      continue;
    if (!answer_by.passed())
      continue;
    // No answer in time: the server is stopped or starved. It is ended
    // first, so that it forks nothing more; then our end is shut, so that
    // a child it forked already but that has not answered yet fails to,
    // and exits without running; an answer that came meanwhile is used.
    auto late = abandon_server(token);
    std::fprintf(stderr,
                 "libactors: the fork server did not answer within %d s "
                 "(stopped?): it was ended, and children are started by exec "
                 "from now on\n",
                 static_cast<int>(answer_bound.count()));
    return late;
  }
}

} // namespace actors::detail::fork_server
