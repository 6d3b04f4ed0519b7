// A userspace twin of kmod/ring.c's producer, for tests and benchmarks of the reader.
// It follows the same protocol step by step: load-acquire the tail, fill the slot,
// store-release the head, count drops when full.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>

#include "vminsight.h"

namespace vmitest {

class RingProducer {
  public:
    explicit RingProducer(std::uint64_t nr_records, std::size_t page = 4096)
        : size_((page + nr_records * sizeof(vmi_record) + page - 1) / page *
                page),  // aligned_alloc wants whole pages
          mem_(static_cast<std::byte*>(std::aligned_alloc(page, size_)), &std::free) {
        if (!mem_) throw std::bad_alloc();
        std::fill_n(mem_.get(), size_, std::byte{0});
        hdr_ = new (mem_.get()) vmi_ring_header{};
        hdr_->version = VMI_ABI_VERSION;
        hdr_->record_size = VMI_RECORD_SIZE;
        hdr_->data_offset = page;
        hdr_->nr_records = nr_records;
        records_ = reinterpret_cast<vmi_record*>(mem_.get() + page);
    }

    std::span<std::byte> mapping() { return {mem_.get(), size_}; }
    vmi_ring_header& header() { return *hdr_; }

    bool write(vmi_record rec) {
        rec.seq = head_ + lost_;
        if (head_ - tail_cache_ >= hdr_->nr_records)
            tail_cache_ = std::atomic_ref<__u64>(hdr_->data_tail).load(std::memory_order_acquire);
        if (head_ - tail_cache_ >= hdr_->nr_records) {
            ++lost_;
            std::atomic_ref<__u64>(hdr_->lost).store(lost_, std::memory_order_relaxed);
            return false;
        }
        records_[head_ & (hdr_->nr_records - 1)] = rec;
        ++head_;
        std::atomic_ref<__u64>(hdr_->data_head).store(head_, std::memory_order_release);
        return true;
    }

    static vmi_record cr3(std::uint32_t vcpu, std::uint64_t old_cr3, std::uint64_t new_cr3) {
        vmi_record r{};
        r.type = VMI_REC_CR3;
        r.vcpu = vcpu;
        r.cr3.old_cr3 = old_cr3;
        r.cr3.new_cr3 = new_cr3;
        return r;
    }

    [[nodiscard]] std::uint64_t lost() const { return lost_; }
    [[nodiscard]] std::uint64_t written() const { return head_; }

  private:
    std::size_t size_;
    std::unique_ptr<std::byte, decltype(&std::free)> mem_;
    vmi_ring_header* hdr_;
    vmi_record* records_;
    std::uint64_t head_ = 0, lost_ = 0, tail_cache_ = 0;
};

}  // namespace vmitest
