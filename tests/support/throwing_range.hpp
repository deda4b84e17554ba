#pragma once

// An input range whose iteration throws: the numbers 0, 1, ... of which
// reading the element at index `bad` throws `bad_input` ("bad input N"),
// either when it is dereferenced or when the iterator advances to it (as
// std::istream_iterator reads in ++). Past `bad`, the range would go on to
// `size`, so a reader that ignores the error sees more elements.

#include <chrono>
#include <cstddef>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace support {

struct bad_input : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class throwing_range {
public:
  enum mode { on_dereference, on_advance };

  class iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    using pointer = const int*;
    using reference = const int&;

    iterator(const throwing_range* r, int x) : r_(r), x_(x) {
    }
    const int& operator*() const {
      if (r_->mode_ == on_dereference && x_ == r_->bad_)
        throw bad_input("bad input " + std::to_string(x_));
      return x_;
    }
    iterator& operator++() {
      ++x_;
      if (r_->mode_ == on_advance && x_ == r_->bad_)
        throw bad_input("bad input " + std::to_string(x_));
      return *this;
    }
    bool operator==(const iterator& other) const {
      return x_ == other.x_;
    }
    bool operator!=(const iterator& other) const {
      return x_ != other.x_;
    }

  private:
    const throwing_range* r_;
    int x_;
  };

  throwing_range(int bad, int size, mode m) : bad_(bad), size_(size), mode_(m) {
  }
  iterator begin() const {
    return iterator{this, 0};
  }
  iterator end() const {
    return iterator{this, size_};
  }

private:
  int bad_;
  int size_;
  mode mode_;
};

// What reading a stream (imap's) to its end gave: the values before an
// error of the input, that error's message (empty if none), and whether the
// next read after the error ended the stream.
struct stream_read {
  std::vector<int> values;
  std::string error;
  bool ended_after_error = false;
};

template <class Stream>
stream_read read_all(Stream& s) {
  using namespace std::chrono_literals;
  stream_read out;
  for (;;) {
    try {
      auto x = s.next(30s);
      if (!x)
        return out;
      out.values.push_back(*x);
    } catch (const bad_input& e) {
      out.error = e.what();
      out.ended_after_error = !s.next(30s).has_value();
      return out;
    }
  }
}

} // namespace support
