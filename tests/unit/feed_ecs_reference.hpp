// The record encoders as they were before the output-buffer rewrite: a test reference only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "feed/encode.hpp"
#include "feed/record.hpp"

namespace feed_ref {

/// What feed::encode_record wrote before the rewrite (ECS and native directly; the rest via
/// the document encoders, which the rewrite leaves alone).
bool encode_record(feed::Encoding enc, const feed::record::View& v, std::string_view id,
                   std::uint64_t seq, const feed::EncodeContext& ctx, std::string& out);

}  // namespace feed_ref
