// The Kafka sink against librdkafka's mock cluster (real protocol on localhost; no broker is
// packaged in Debian): every event arrives, keyed by its id, across a broker outage.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "feed/feed.hpp"
#include "feed/kafka_sink.hpp"

namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct MockCluster {
    rd_kafka_t* rk = nullptr;
    rd_kafka_mock_cluster_t* mc = nullptr;
    std::string bootstraps;
    MockCluster() {
        char err[256];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        mc = rd_kafka_mock_cluster_new(rk, 1);
        bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
        rd_kafka_mock_topic_create(mc, "vminsight", 1, 1);
    }
    ~MockCluster() {
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
    }
    // Every message in the topic: key -> value.
    std::map<std::string, std::string> consume_all(std::size_t want) const {
        char err[256];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), err, sizeof err);
        rd_kafka_conf_set(conf, "group.id", "test", err, sizeof err);
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        rd_kafka_poll_set_consumer(c);
        rd_kafka_topic_partition_list_t* t = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(t, "vminsight", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(c, t);
        rd_kafka_topic_partition_list_destroy(t);
        std::map<std::string, std::string> got;
        std::size_t messages = 0;
        for (int i = 0; i < 300 && got.size() < want; ++i) {
            rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
            if (!m) continue;
            if (!m->err) {
                ++messages;
                got[std::string(static_cast<const char*>(m->key), m->key_len)] =
                    std::string(static_cast<const char*>(m->payload), m->len);
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        return got;
    }
};

TEST(FeedKafka, EveryEventArrivesAcrossABrokerOutage) {
    MockCluster kafka;
    const fs::path dir = fs::temp_directory_path() / ("vmi-kafka-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    feed::Spool spool({dir});
    feed::KafkaSinkOptions o;
    o.brokers = kafka.bootstraps;
    o.topic = "vminsight";
    o.timeout = 1500ms;
    o.properties["log_level"] = "0";
    feed::WorkerOptions w;
    w.backoff_min = 50ms;
    w.backoff_max = 300ms;
    w.idle_wait = 50ms;
    feed::SinkWorker worker(spool, "kafka", std::make_unique<feed::KafkaSink>(o), w);
    for (int i = 0; i < 100; ++i) spool.append(nlohmann::json{{"n", i}}.dump());
    ASSERT_TRUE(worker.drain(30s)) << worker.status().last_error;
    rd_kafka_mock_broker_set_down(kafka.mc, 1);
    for (int i = 100; i < 200; ++i) spool.append(nlohmann::json{{"n", i}}.dump());
    for (int i = 0; i < 1000 && worker.status().up; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(worker.status().up);
    rd_kafka_mock_broker_set_up(kafka.mc, 1);
    ASSERT_TRUE(worker.drain(60s)) << worker.status().last_error;
    const auto got = kafka.consume_all(200);
    ASSERT_EQ(got.size(), 200u);
    for (std::uint64_t seq = 1; seq <= 200; ++seq) {
        const auto it = got.find(spool.id() + "-" + std::to_string(seq));
        ASSERT_NE(it, got.end()) << seq;
        EXPECT_EQ(nlohmann::json::parse(it->second)["n"], seq - 1);
    }
    fs::remove_all(dir);
}

TEST(FeedKafka, BadSettingsNameTheProperty) {
    try {
        feed::parse_feed_config({{"sinks",
                                  {{{"name", "k"},
                                    {"type", "kafka"},
                                    {"brokers", "127.0.0.1:1"},
                                    {"topic", "t"},
                                    {"properties", {{"acks", "sometimes"}}}}}}},
                                "feed.json");
        FAIL();
    } catch (const feed::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("feed.json: sinks[0]: properties: kafka: acks:"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
