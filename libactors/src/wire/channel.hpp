#pragma once

// A direct channel between a process and one of its children: each holds
// one end of a socket pair made at spawn. It carries frames
//   [u32 size of body][u8 kind][body: CAF-serialized values]
// without the middleman: a frame costs a memcpy into a buffer and a share
// of one send(), where a message through BASP crosses about five threads.
// Actor handles inside a body still become working proxies: bodies are
// read against the BASP broker's proxy registry, as the broker would.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <caf/sec.hpp>

namespace actors::detail {

class channel {
public:
  struct frame {
    std::uint8_t kind;
    const char* data;
    std::size_t size;
  };

  /// Takes ownership of `fd`, a connected stream socket.
  explicit channel(int fd);
  ~channel();

  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  int fd() const noexcept {
    return fd_;
  }

  /// Appends a frame of `kind` holding `xs` to the output.
  template <class... Ts>
  caf::error put(std::uint8_t kind, Ts&... xs) {
    auto start = out_.size();
    auto err = with_context([&](caf::execution_unit* ctx) {
      out_.resize(start + header_size);
      caf::binary_serializer sink{ctx, out_};
      return sink(xs...);
    });
    if (!err && out_.size() - start - header_size > UINT32_MAX)
      err = caf::make_error(caf::sec::invalid_argument,
                            "a frame over 4 GiB");
    if (err) {
      out_.resize(start);
      return err;
    }
    auto size = static_cast<std::uint32_t>(out_.size() - start - header_size);
    std::memcpy(out_.data() + start, &size, sizeof(size));
    out_[start + sizeof(size)] = static_cast<char>(kind);
    return caf::none;
  }

  /// Output not yet handed to the kernel.
  bool pending() const noexcept {
    return sent_ < out_.size();
  }

  /// Hands pending output to the kernel: all of it if `block`, else what
  /// fits now. False once the peer is gone.
  bool flush(bool block);

  /// Reads what has arrived, waiting for something if `block`. False at the
  /// end of the stream (the peer closed or died).
  bool fill(bool block);

  /// Appends `size` bytes that arrived by other means (shared memory) to
  /// what next() reads.
  void feed(const char* data, std::size_t size);

  ///@{
  /// The output not yet handed to the kernel, for a caller that delivers
  /// it by other means, and forgetting it once delivered.
  std::pair<const char*, std::size_t> output() const noexcept {
    return {out_.data() + sent_, out_.size() - sent_};
  }
  void clear_output() noexcept {
    out_.clear();
    sent_ = 0;
  }
  ///@}

  /// The next complete frame read, if any; valid until the next fill().
  std::optional<frame> next();

  /// The body size the next frame announces, once its header is read.
  std::optional<std::uint32_t> next_size() const;

  /// Reads `xs` from a frame's body.
  template <class... Ts>
  caf::error get(const frame& f, Ts&... xs) {
    return with_context([&](caf::execution_unit* ctx) {
      caf::binary_deserializer source{ctx, f.data, f.size};
      return source(xs...);
    });
  }

  /// Tells the peer that nothing more will come (it reads the end).
  void shutdown_write();

  /// When bytes last arrived (or the channel was made): a peer that keeps
  /// its channel alive (beat) and stays silent longer than it should is
  /// stopped, hung or cut off, even if its kernel still answers.
  std::chrono::steady_clock::time_point heard() const noexcept {
    return heard_;
  }

  /// Sends an empty frame of `kind` from a thread other than the one
  /// that puts and flushes: a proof of life while that one is busy (a
  /// task). Skipped while that thread hands output to the kernel, which
  /// proves as much, or stopped halfway through a frame. False once the
  /// peer is gone.
  bool beat(std::uint8_t kind);

  /// Ends the channel for a peer that stopped answering: records `err` as
  /// the failure (ETIMEDOUT) and shuts the socket both ways; fill() then
  /// reads the end.
  void abandon(int err);

  /// The error (an errno) that ended the stream, the first one if several
  /// did: 0 while it works and after an orderly end.
  int failure() const noexcept {
    return failure_;
  }

private:
  static constexpr std::size_t header_size = sizeof(std::uint32_t) + 1;

  // Runs `fn` with the serialization context of this thread: this node's
  // actor system with BASP's proxy registry; or, in a child that has not
  // started its actor system, none at first, which serves every frame
  // without actor handles (one with handles fails with sec::no_context
  // and runs again once the actor system is there).
  template <class F>
  static caf::error with_context(F fn) {
    if (!runtime_ready()) {
      auto err = fn(nullptr);
      if (!err || err.category() != caf::atom("system")
          || err.code() != static_cast<std::uint8_t>(caf::sec::no_context))
        return err;
    }
    return fn(&context());
  }

  static bool runtime_ready() noexcept;
  static caf::execution_unit& context();

  int fd_;
  std::vector<char> out_;
  std::size_t sent_ = 0;
  std::unique_ptr<char[]> in_;
  std::size_t in_cap_ = 0;
  std::size_t in_len_ = 0;
  std::size_t read_ = 0; // consumed by next()
  int failure_ = 0;
  std::chrono::steady_clock::time_point heard_ =
    std::chrono::steady_clock::now();
  std::mutex writing_; // flush() and beat(), of two threads
  bool midframe_ = false; // flush() left part of a frame unsent
};

} // namespace actors::detail
