#include "feed/kafka_sink.hpp"

#include <librdkafka/rdkafka.h>

#include <stdexcept>
#include <vector>

namespace feed {

struct KafkaSink::Impl {
    KafkaSinkOptions opts;
    rd_kafka_t* rk = nullptr;
    // Per batch: each message's outcome, by its index in the batch (the opaque).
    std::vector<rd_kafka_resp_err_t> results;
    std::vector<bool> done;

    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* self) {
        auto* impl = static_cast<Impl*>(self);
        const auto i = reinterpret_cast<std::uintptr_t>(m->_private);
        if (i < impl->results.size()) {
            impl->results[i] = m->err;
            impl->done[i] = true;
        }
    }
};

KafkaSink::KafkaSink(KafkaSinkOptions opts) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(opts);
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::map<std::string, std::string> props = {
        {"bootstrap.servers", impl_->opts.brokers},
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"message.timeout.ms", std::to_string(impl_->opts.timeout.count())},
    };
    for (const auto& [k, v] : impl_->opts.properties) props[k] = v;
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error("kafka: " + k + ": " + err);
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, &Impl::on_delivery);
    rd_kafka_conf_set_opaque(conf, impl_.get());
    impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);  // owns conf on success
    if (!impl_->rk) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("kafka: ") + err);
    }
}

KafkaSink::~KafkaSink() {
    if (impl_->rk) {
        rd_kafka_flush(impl_->rk, 2000);
        rd_kafka_destroy(impl_->rk);
    }
}

SendResult KafkaSink::send(const Delivery& d) {
    SendResult r;
    Impl& k = *impl_;
    k.results.assign(d.records.size(), RD_KAFKA_RESP_ERR_NO_ERROR);
    k.done.assign(d.records.size(), false);
    for (std::size_t i = 0; i < d.records.size(); ++i) {
        const auto& rec = d.records[i];
        const std::string key = std::string(d.spool_id) + "-" + std::to_string(rec.seq);
        const rd_kafka_resp_err_t e = rd_kafka_producev(
            k.rk, RD_KAFKA_V_TOPIC(k.opts.topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key.data(), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(rec.payload.data()), rec.payload.size()),
            RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(i))),
            RD_KAFKA_V_END);
        if (e) {
            k.results[i] = e;
            k.done[i] = true;
            break;  // the rest of the batch waits for the next try
        }
    }
    // Wait for every report (each message either delivered or failed by message.timeout.ms).
    rd_kafka_flush(k.rk, static_cast<int>(k.opts.timeout.count()) + 2000);
    for (std::size_t i = 0; i < d.records.size(); ++i) {
        if (k.done[i] && k.results[i] == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ++r.accepted;
            continue;
        }
        r.error = "kafka " + k.opts.topic + ": " +
                  (k.done[i] ? rd_kafka_err2str(k.results[i]) : "no delivery report");
        break;
    }
    return r;
}

}  // namespace feed
