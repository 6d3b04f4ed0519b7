// Consumer side of the vminsight.ko record ring (protocol in kmod/uapi/vminsight.h).
// The mapping is shared with the kernel; nothing in it is trusted beyond what the
// protocol guarantees, and a header that breaks the protocol is reported, not followed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "vminsight.h"

namespace vmid {

struct RingCorrupt : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class RingReader {
  public:
    /// `mapping` is the whole session mapping: header page then records.
    /// Throws RingCorrupt when the header does not describe a valid ring of that size.
    explicit RingReader(std::span<std::byte> mapping);

    /// Calls `on_record(const vmi_record&)` for every published record, oldest first,
    /// at most `max` of them, then hands the slots back to the kernel. Returns the count.
    template <class F>
    std::size_t drain(F&& on_record, std::size_t max = SIZE_MAX);

    /// Records the kernel dropped because the ring was full (its own count).
    [[nodiscard]] std::uint64_t kernel_lost() const noexcept;
    /// Records missing from the sequence as seen by this reader; equals kernel_lost()
    /// once every record published before the last drop has been read.
    [[nodiscard]] std::uint64_t seq_gaps() const noexcept { return seq_gaps_; }
    [[nodiscard]] std::uint64_t consumed() const noexcept { return tail_; }
    [[nodiscard]] std::uint64_t capacity() const noexcept { return nr_; }

  private:
    std::uint64_t load_head() const;
    void store_tail(std::uint64_t tail);

    vmi_ring_header* hdr_;
    const vmi_record* records_;
    std::uint64_t nr_;
    std::uint64_t tail_;
    std::uint64_t next_seq_ = 0;
    std::uint64_t seq_gaps_ = 0;
};

template <class F>
std::size_t RingReader::drain(F&& on_record, std::size_t max) {
    const std::uint64_t head = load_head();
    if (head - tail_ > nr_)
        throw RingCorrupt("ring head " + std::to_string(head) +
                          " is more than a ring ahead of tail " + std::to_string(tail_));
    std::size_t n = 0;
    while (tail_ != head && n < max) {
        const vmi_record rec = records_[tail_ & (nr_ - 1)];
        if (rec.seq > next_seq_) seq_gaps_ += rec.seq - next_seq_;
        next_seq_ = rec.seq + 1;
        on_record(rec);
        ++tail_;
        ++n;
    }
    if (n) store_tail(tail_);
    return n;
}

}  // namespace vmid
