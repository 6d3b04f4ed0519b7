// Encoders: ECS (validated against docs/schema/vminsight-ecs.schema.json with a real JSON Schema
// validator), OCSF, the Falco envelope, and hostile guest strings.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "feed/encode.hpp"

namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

const feed::EncodeContext kCtx{"kvm-host-1", "0.1.0"};

json started() {
    return json::parse(R"({"@timestamp":"2026-11-26T10:00:00.000001Z",
      "event":{"kind":"event","category":"process","action":"process-started"},
      "vm":{"name":"web-1","uuid":"6f2c1b2a-0000-4000-8000-000000000001"},
      "process":{"pid":42,"ppid":7,"name":"nc","exe":"/usr/bin/nc","args":["nc","-e","/bin/sh"],
        "uid":1000,"euid":0,"gid":1000,"task":"0xffff888001234000","start_time_ns":123456789,
        "cr3":"0x1234000","parent":{"pid":7,"name":"bash","exe":"/usr/bin/bash"},
        "ancestors":["bash","sshd"]}})");
}

json denied() {
    return json::parse(R"({"@timestamp":"2026-11-26T10:00:01Z",
      "event":{"kind":"event","category":"process","action":"syscall-denied","outcome":"failure"},
      "vm":{"name":"web-1"},"process":{"pid":43,"name":"sh"},
      "syscall":{"name":"execve","nr":59,"denied":true,"error":"EPERM",
        "args":{"path":"/tmp/x","argv":["/tmp/x"]}}})");
}

json alert() {
    return json::parse(R"({"@timestamp":"2026-11-26T10:00:02Z",
      "event":{"kind":"alert","category":"process","action":"policy-match","trigger":"syscall"},
      "vm":{"name":"web-1"},"process":{"pid":44,"name":"cat","uid":0},
      "rule":{"name":"Read Shadow File","priority":"critical","action":"alert","mode":"enforce",
        "tags":["credential_access","T1003.008"],"source":"default.yaml:203","policy":"base"},
      "message":"shadow read by cat","syscall":{"name":"openat"}})");
}

json attached() {
    return json::parse(R"({"event":{"kind":"event","category":"host","action":"vm-attached"},
      "vm":{"name":"web-1"},"vminsight":{"qemu_pid":100}})");
}

json detached() {
    return json::parse(R"j({"event":{"kind":"event","category":"host","action":"vm-detached",
      "reason":"domain stopped (saved)"},
      "vm":{"name":"web-1","uuid":"6f2c1b2a-0000-4000-8000-000000000001"}})j");
}

TEST(FeedEncode, EcsFieldsAreWhereEcsPutsThem) {
    const json e = feed::to_ecs(started(), "0123456789abcdef-5", 5, kCtx);
    EXPECT_EQ(e["event"]["id"], "0123456789abcdef-5");
    EXPECT_EQ(e["event"]["sequence"], 5);
    EXPECT_EQ(e["event"]["category"], json({"process"}));
    EXPECT_EQ(e["event"]["type"], json({"start"}));
    EXPECT_EQ(e["host"]["name"], "web-1");
    EXPECT_EQ(e["host"]["id"], "6f2c1b2a-0000-4000-8000-000000000001");
    EXPECT_EQ(e["observer"]["hostname"], "kvm-host-1");
    EXPECT_EQ(e["process"]["executable"], "/usr/bin/nc");
    EXPECT_EQ(e["process"]["command_line"], "nc -e /bin/sh");
    EXPECT_EQ(e["process"]["args_count"], 3);
    EXPECT_EQ(e["process"]["user"]["id"], "0");  // effective
    EXPECT_EQ(e["process"]["real_user"]["id"], "1000");
    EXPECT_EQ(e["process"]["parent"],
              json({{"pid", 7}, {"name", "bash"}, {"executable", "/usr/bin/bash"}}));
    EXPECT_EQ(e["process"]["entity_id"].get<std::string>().size(), 32u);
    EXPECT_EQ(e["process"]["entity_id"],
              feed::process_entity_id("web-1", "0xffff888001234000", 123456789));
    // Pinned: ids already sent to SIEMs must stay the same whoever computes them.
    EXPECT_EQ(e["process"]["entity_id"], "8bc65431e9184a1bbffc6e04476c1565");
    EXPECT_NE(feed::process_entity_id("web-2", "0xffff888001234000", 123456789),
              e["process"]["entity_id"]);  // the same task in another VM is another process
    EXPECT_EQ(e["vminsight"]["cr3"], "0x1234000");

    const json a = feed::to_ecs(alert(), "0123456789abcdef-6", 6, kCtx);
    EXPECT_EQ(a["event"]["kind"], "alert");
    EXPECT_EQ(a["event"]["category"], json({"intrusion_detection"}));
    EXPECT_EQ(a["event"]["severity"], 5);
    EXPECT_EQ(a["rule"]["name"], "Read Shadow File");
    EXPECT_EQ(a["rule"]["ruleset"], "base");
    EXPECT_EQ(a["threat"]["technique"]["id"], json({"T1003.008"}));
    const json d = feed::to_ecs(denied(), "0123456789abcdef-7", 7, kCtx);
    EXPECT_EQ(d["event"]["type"], json({"denied"}));
    EXPECT_EQ(d["event"]["outcome"], "failure");
    EXPECT_EQ(d["vminsight"]["syscall"]["args"]["path"], "/tmp/x");
    // Why a VM was detached is ECS's event.reason.
    EXPECT_EQ(feed::to_ecs(detached(), "0123456789abcdef-8", 8, kCtx)["event"]["reason"],
              "domain stopped (saved)");
}

TEST(FeedEncode, EcsOutputValidatesAgainstTheSchema) {
    const fs::path file = fs::temp_directory_path() / ("vmi-ecs-" + std::to_string(::getpid()));
    {
        std::ofstream out(file);
        std::uint64_t seq = 1;
        for (const json& n : {started(), denied(), alert(), attached(), detached()})
            out << *feed::encode(feed::Encoding::Ecs, n, "0123456789abcdef-" + std::to_string(seq),
                                 seq, kCtx)
                << "\n",
                ++seq;
    }
    const std::string cmd = std::string("/usr/bin/python3 ") + VMI_SCHEMA_VALIDATOR + " " +
                            VMI_ECS_SCHEMA + " " + file.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    // The validator can fail: a sequence that is not a number, an id of the wrong shape.
    {
        json bad = feed::to_ecs(started(), "nope", 1, kCtx);
        bad["event"]["sequence"] = "1";
        std::ofstream(file) << bad.dump() << "\n";
    }
    EXPECT_NE(std::system((cmd + " >/dev/null").c_str()), 0);
    fs::remove(file);
}

TEST(FeedEncode, AnyGuestBytesMakeOneValidJsonLine) {
    json n = started();
    n["process"]["name"] = std::string("ev\xff\xfe\x01il\n\"x", 10);
    n["process"]["args"] = json::array({std::string("\xc3\x28", 2), "ok\tkay"});
    for (auto enc : {feed::Encoding::Native, feed::Encoding::Ecs, feed::Encoding::Ocsf}) {
        const auto line = feed::encode(enc, n, "0123456789abcdef-1", 1, kCtx);
        ASSERT_TRUE(line);
        EXPECT_EQ(line->find('\n'), std::string::npos);
        const json back = json::parse(*line);  // throws if not valid UTF-8 JSON
        EXPECT_FALSE(back.is_discarded());
    }
    const json e =
        json::parse(*feed::encode(feed::Encoding::Ecs, n, "0123456789abcdef-1", 1, kCtx));
    EXPECT_EQ(e["process"]["name"],
              "ev\xEF\xBF\xBD\xEF\xBF\xBD\x01il\n\"x");  // U+FFFD for each bad byte
}

TEST(FeedEncode, OcsfClasses) {
    const json p = feed::to_ocsf(started(), "0123456789abcdef-1", 1, kCtx);
    EXPECT_EQ(p["class_uid"], 1007);
    EXPECT_EQ(p["activity_id"], 1);
    EXPECT_EQ(p["type_uid"], 100701);
    EXPECT_EQ(p["process"]["file"]["path"], "/usr/bin/nc");
    EXPECT_EQ(p["device"]["hostname"], "web-1");
    EXPECT_EQ(p["metadata"]["uid"], "0123456789abcdef-1");
    const json f = feed::to_ocsf(alert(), "0123456789abcdef-2", 2, kCtx);
    EXPECT_EQ(f["class_uid"], 2004);
    EXPECT_EQ(f["type_uid"], 200401);
    EXPECT_EQ(f["finding_info"]["title"], "Read Shadow File");
    EXPECT_EQ(f["finding_info"]["attacks"][0]["technique"]["uid"], "T1003.008");
    EXPECT_EQ(f["severity_id"], 4);
}

TEST(FeedEncode, FalcoEnvelopeForAlertsOnly) {
    EXPECT_FALSE(feed::encode(feed::Encoding::Falco, started(), "x-1", 1, kCtx));
    const json f = json::parse(*feed::encode(feed::Encoding::Falco, alert(), "x-2", 2, kCtx));
    EXPECT_EQ(f["rule"], "Read Shadow File");
    EXPECT_EQ(f["priority"], "Critical");
    EXPECT_EQ(f["output"], "shadow read by cat");
    EXPECT_EQ(f["source"], "vminsight");
    EXPECT_EQ(f["hostname"], "kvm-host-1");
    EXPECT_EQ(f["output_fields"]["proc.name"], "cat");
    EXPECT_EQ(f["output_fields"]["evt.type"], "openat");
    EXPECT_EQ(f["tags"], json({"credential_access", "T1003.008"}));
}

TEST(FeedEncode, NativeKeepsTheEventAndAddsItsId) {
    const json n = json::parse(*feed::encode(feed::Encoding::Native, denied(), "ab-9", 9, kCtx));
    EXPECT_EQ(n["event"]["id"], "ab-9");
    EXPECT_EQ(n["event"]["sequence"], 9);
    EXPECT_EQ(n["syscall"], denied()["syscall"]);
    EXPECT_EQ(feed::parse_encoding("ocsf"), feed::Encoding::Ocsf);
    EXPECT_FALSE(feed::parse_encoding("cef"));
}

}  // namespace

#include "feed/json_writer.hpp"

namespace {

std::string esc(std::string_view s) {
    std::string out;
    feed::append_escaped(out, s);
    return out;
}

TEST(FeedJsonWriter, EscapesAndRepairsAnyBytes) {
    EXPECT_EQ(esc("plain /path"), "plain /path");
    EXPECT_EQ(esc("a\"b\\c\n\r\t\b\f"), "a\\\"b\\\\c\\n\\r\\t\\b\\f");
    EXPECT_EQ(esc(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\x7f");
    EXPECT_EQ(esc(std::string("\0x", 2)), "\\u0000x");
    EXPECT_EQ(esc("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
              "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    const std::string fffd = "\xEF\xBF\xBD";
    EXPECT_EQ(esc("\xC0\xAF"), fffd + fffd);                        // overlong '/'
    EXPECT_EQ(esc("\xED\xA0\x80"), fffd + fffd + fffd);             // a UTF-16 surrogate
    EXPECT_EQ(esc("\xE2\x82"), fffd + fffd);                        // cut short
    EXPECT_EQ(esc("\xF5\x80\x80\x80"), fffd + fffd + fffd + fffd);  // past U+10FFFF
    EXPECT_EQ(esc("\x80x"), fffd + "x");                            // a lone continuation byte
    std::string out;
    feed::JsonWriter w(out);
    w.begin_object().key("a").number(-1).key("b").begin_array().string("x").unumber(2).boolean(
        true);
    w.end_array().key("c").value(nlohmann::json{{"d", nullptr}}).end_object();
    EXPECT_EQ(out, R"({"a":-1,"b":["x",2,true],"c":{"d":null}})");
    EXPECT_EQ(nlohmann::json::parse(out)["b"][1], 2);
}

}  // namespace
