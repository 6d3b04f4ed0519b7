#include "ring_reader.hpp"

#include <atomic>
#include <bit>

namespace vmid {

RingReader::RingReader(std::span<std::byte> mapping) {
    if (mapping.size() < sizeof(vmi_ring_header))
        throw RingCorrupt("ring mapping smaller than its header");
    hdr_ = reinterpret_cast<vmi_ring_header*>(mapping.data());
    if (hdr_->version != VMI_ABI_VERSION)
        throw RingCorrupt("ring ABI version " + std::to_string(hdr_->version) + ", expected " +
                          std::to_string(VMI_ABI_VERSION));
    if (hdr_->record_size != sizeof(vmi_record)) throw RingCorrupt("ring record size mismatch");
    nr_ = hdr_->nr_records;
    const std::uint64_t off = hdr_->data_offset;
    if (nr_ == 0 || !std::has_single_bit(nr_) || off < sizeof(vmi_ring_header) ||
        off % alignof(vmi_record) != 0 || off > mapping.size() ||
        (mapping.size() - off) / sizeof(vmi_record) < nr_)
        throw RingCorrupt("ring geometry does not fit its mapping");
    records_ = reinterpret_cast<const vmi_record*>(mapping.data() + off);
    // Start where the kernel says the reader is: records before it are not ours.
    tail_ = std::atomic_ref<__u64>(hdr_->data_tail).load(std::memory_order_relaxed);
    next_seq_ = tail_;
}

std::uint64_t RingReader::load_head() const {
    // Pairs with the kernel's smp_store_release of data_head.
    return std::atomic_ref<__u64>(hdr_->data_head).load(std::memory_order_acquire);
}

void RingReader::store_tail(std::uint64_t tail) {
    // Pairs with the kernel's smp_load_acquire: our reads of these slots are done.
    std::atomic_ref<__u64>(hdr_->data_tail).store(tail, std::memory_order_release);
}

std::uint64_t RingReader::kernel_lost() const noexcept {
    return std::atomic_ref<__u64>(hdr_->lost).load(std::memory_order_relaxed);
}

}  // namespace vmid
