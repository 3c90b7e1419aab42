#include <gtest/gtest.h>

#include "net/http_server.h"

namespace ganglion::net {
namespace {

HttpRequest request(std::string method, std::string path) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

TEST(HttpRouter, FillsPathParameters) {
  HttpRouter router;
  router.add("GET", "/rules/{id}/status",
             [](const HttpRequest& r) { return HttpResponse::text(200, r.params.at("id")); });
  auto req = request("GET", "/rules/r1/status");
  EXPECT_EQ(router.dispatch(req).body, "r1");
}

TEST(HttpRouter, UnknownPathIs404AndWrongMethodIs405) {
  HttpRouter router;
  router.add("GET", "/healthz", [](const HttpRequest&) { return HttpResponse::text(200, "ok"); });
  auto a = request("GET", "/nope");
  EXPECT_EQ(router.dispatch(a).status, 404);
  auto b = request("POST", "/healthz");
  EXPECT_EQ(router.dispatch(b).status, 405);
  auto c = request("HEAD", "/healthz");
  EXPECT_EQ(router.dispatch(c).status, 200);
}

TEST(HttpRouter, ErrorBodyIsEscapedJson) {
  auto r = HttpResponse::error(400, "bad \"x\"\n");
  EXPECT_EQ(r.body, "{\"error\":\"bad \\\"x\\\"\\n\"}");
  EXPECT_EQ(r.content_type, "application/json");
}

TEST(SplitHostPort, AcceptsIpv4Ipv6AndRejectsJunk) {
  EXPECT_EQ(split_host_port("127.0.0.1:8080")->second, 8080);
  EXPECT_EQ(split_host_port("[::1]:0")->first, "::1");
  EXPECT_FALSE(split_host_port("localhost").ok());
  EXPECT_FALSE(split_host_port("a:99999").ok());
  EXPECT_FALSE(split_host_port("a:x").ok());
}

TEST(ParseTarget, DecodesPathAndQuery) {
  HttpRequest r;
  parse_target("/v1/a%20b/c?metric=motor.rpm&where=site%3Deu-1&x&&from=-15m&t=a+b&bad=%zz%4", r);
  EXPECT_EQ(r.path, "/v1/a b/c");
  EXPECT_EQ(r.query.at("metric"), "motor.rpm");
  EXPECT_EQ(r.query.at("where"), "site=eu-1");
  EXPECT_EQ(r.query.at("x"), "");
  EXPECT_EQ(r.query.at("from"), "-15m");
  EXPECT_EQ(r.query.at("t"), "a b");
  EXPECT_EQ(r.query.at("bad"), "%zz%4");
  EXPECT_EQ(r.query.size(), 6u);
}

}  // namespace
}  // namespace ganglion::net
