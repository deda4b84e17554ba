#include "link/ring.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "base/futex.hpp"

namespace actors::detail::links {

// -- setup
// ---------------------------------------------------------------------

ring::ring(ring&& other) noexcept {
  *this = std::move(other);
}

ring& ring::operator=(ring&& other) noexcept {
  if (this != &other) {
    this->~ring();
    hdr_ = std::exchange(other.hdr_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    map_size_ = std::exchange(other.map_size_, 0);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

ring::~ring() {
  if (hdr_ != nullptr)
    ::munmap(hdr_, map_size_);
  if (fd_ >= 0)
    ::close(fd_);
  hdr_ = nullptr;
  fd_ = -1;
}

namespace {

constexpr unsigned required_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

} // namespace

ring ring::create(std::size_t capacity) {
  std::size_t cap = 4096;
  while (cap < capacity && cap < (std::size_t{1} << 30))
    cap <<= 1;
  auto fail = [](const char* what) {
    throw error(errc::spawn_failed, std::string{"cannot make a link ring: "}
                                        + what + ": " + std::strerror(errno));
  };
  int fd = ::memfd_create("actors-link-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    fail("memfd_create");
  ring result;
  result.fd_ = fd;
  result.map_size_ = header_size + cap;
  if (::ftruncate(fd, static_cast<off_t>(result.map_size_)) != 0)
    fail("ftruncate");
  if (::fcntl(fd, F_ADD_SEALS, required_seals) != 0)
    fail("sealing");
  auto p = ::mmap(nullptr, result.map_size_, PROT_READ | PROT_WRITE, MAP_SHARED,
                  fd, 0);
  if (p == MAP_FAILED)
    fail("mmap");
  // A fresh memfd reads as zeros: every atomic starts at 0.
  result.hdr_ = static_cast<ring_header*>(p);
  result.data_ = static_cast<char*>(p) + header_size;
  result.capacity_ = cap;
  result.hdr_->capacity = cap;
  result.hdr_->magic = ring_header::magic_value;
  return result;
}

ring ring::attach(int fd) {
  ring result;
  result.fd_ = fd; // closed with `result` if it is not a ring
  if (fd < 0)
    return result;
  auto seals = ::fcntl(fd, F_GET_SEALS);
  struct stat st {};
  if (seals < 0
      || (static_cast<unsigned>(seals) & required_seals) != required_seals
      || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
      || st.st_size <= static_cast<off_t>(header_size)
      || st.st_size > static_cast<off_t>(header_size + (std::size_t{1} << 30)))
    return result;
  auto size = static_cast<std::size_t>(st.st_size);
  auto cap = size - header_size;
  if ((cap & (cap - 1)) != 0)
    return result;
  auto p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return result;
  auto* hdr = static_cast<ring_header*>(p);
  if (hdr->magic != ring_header::magic_value || hdr->capacity != cap) {
    ::munmap(p, size);
    return result;
  }
  result.hdr_ = hdr;
  result.data_ = static_cast<char*>(p) + header_size;
  result.capacity_ = cap;
  result.map_size_ = size;
  return result;
}

// -- producer
// ------------------------------------------------------------------

std::ptrdiff_t ring::write_some(const char* data, std::size_t size) {
  auto& h = *hdr_;
  // Our own head: only this side writes it (the peer could, but then it
  // only harms what it receives).
  auto head = h.head.load(std::memory_order_relaxed);
  auto tail = h.tail.load(std::memory_order_acquire);
  auto used = head - tail;
  if (used > capacity_)
    return -1;
  auto n = std::min<std::size_t>(size, capacity_ - used);
  if (n == 0)
    return 0;
  auto at = head & (capacity_ - 1);
  auto first = std::min<std::size_t>(n, capacity_ - at);
  std::memcpy(data_ + at, data, first);
  std::memcpy(data_, data + first, n - first);
  // seq_cst: ordered before this side's later look at sleepers and slots.
  h.head.store(head + n, std::memory_order_seq_cst);
  return static_cast<std::ptrdiff_t>(n);
}

std::size_t ring::room() const noexcept {
  auto& h = *hdr_;
  auto used = h.head.load(std::memory_order_relaxed)
              - h.tail.load(std::memory_order_seq_cst);
  return used > capacity_ ? 0 : capacity_ - used;
}

bool ring::notify_data(std::uint64_t actor) {
  auto& h = *hdr_;
  if (actor != 0 && h.callers.load(std::memory_order_seq_cst) != 0) {
    for (int i = 0; i < ring_header::slot_count; ++i) {
      if (h.slots[i].actor.load(std::memory_order_seq_cst) == actor) {
        ring_slot(i);
        return true;
      }
    }
  }
  ring_data();
  return false;
}

void ring::wait_room(std::size_t want, time_point deadline) {
  auto& h = *hdr_;
  auto seen = h.room_bell.load(std::memory_order_seq_cst);
  h.room_waiters.fetch_add(1, std::memory_order_seq_cst);
  auto used = h.head.load(std::memory_order_relaxed)
              - h.tail.load(std::memory_order_seq_cst);
  if (used <= capacity_ && capacity_ - used < std::min(want, capacity_))
    futex_wait(h.room_bell, seen, deadline);
  h.room_waiters.fetch_sub(1, std::memory_order_seq_cst);
}

// -- consumer
// ------------------------------------------------------------------

std::int64_t ring::readable() const noexcept {
  auto& h = *hdr_;
  auto avail = h.head.load(std::memory_order_acquire)
               - h.tail.load(std::memory_order_relaxed);
  return avail > capacity_ ? -1 : static_cast<std::int64_t>(avail);
}

std::ptrdiff_t ring::read_some(char* out, std::size_t max) {
  auto& h = *hdr_;
  auto tail = h.tail.load(std::memory_order_relaxed);
  auto avail = h.head.load(std::memory_order_acquire) - tail;
  if (avail > capacity_)
    return -1;
  auto n = std::min<std::size_t>(max, avail);
  auto at = tail & (capacity_ - 1);
  auto first = std::min<std::size_t>(n, capacity_ - at);
  std::memcpy(out, data_ + at, first);
  std::memcpy(out + first, data_, n - first);
  h.tail.store(tail + n, std::memory_order_seq_cst);
  return static_cast<std::ptrdiff_t>(n);
}

bool ring::notify_room() {
  auto& h = *hdr_;
  if (h.room_waiters.load(std::memory_order_seq_cst) != 0) {
    h.room_bell.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(h.room_bell, INT_MAX);
  }
  return h.nudge.load(std::memory_order_seq_cst) != 0;
}

void ring::ring_data() {
  // seq_cst, as the bytes' head: the consumer announces a sleep or sets
  // busy, then looks at head; this side moved head, then looks at those.
  auto& h = *hdr_;
  if (h.sleepers.load(std::memory_order_seq_cst) != 0)
    wake_data(reader_bit);
  else if (h.busy.load(std::memory_order_seq_cst) != 0
           && h.spare_sleepers.load(std::memory_order_seq_cst) != 0)
    wake_data(spare_bit);
}

void ring::set_busy(bool busy) {
  auto& h = *hdr_;
  h.busy.store(busy ? 1 : 0, std::memory_order_seq_cst);
  // Bytes that came before the flag was up: their producer may have left
  // them to a reader it saw awake, which this thread was.
  if (busy && readable() != 0
      && h.spare_sleepers.load(std::memory_order_seq_cst) != 0)
    wake_data(spare_bit);
}

void ring::wake_data(std::uint32_t bits) {
  hdr_->data_bell.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(hdr_->data_bell, 1, bits);
}

void ring::wait_data_impl(std::uint32_t seen, time_point deadline,
                          bool spare) {
  futex_wait(hdr_->data_bell, seen, deadline, spare ? spare_bit : reader_bit);
}

int ring::claim_slot(std::uint64_t actor) {
  auto& h = *hdr_;
  for (int i = 0; i < ring_header::slot_count; ++i) {
    std::uint64_t expected = 0;
    if (h.slots[i].actor.compare_exchange_strong(expected, actor)) {
      h.callers.fetch_add(1, std::memory_order_seq_cst);
      return i;
    }
  }
  return -1;
}

void ring::release_slot(int index) {
  auto& h = *hdr_;
  h.slots[index].actor.store(0, std::memory_order_seq_cst);
  h.callers.fetch_sub(1, std::memory_order_seq_cst);
}

void ring::ring_slot(int index) {
  auto& bell = hdr_->slots[index].bell;
  bell.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(bell, 1);
}

} // namespace actors::detail::links
