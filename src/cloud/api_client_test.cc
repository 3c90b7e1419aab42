#include "cloud/api_client.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <vector>

namespace ganglion::cloud {
namespace {

using json = nlohmann::json;

// A fake list endpoint: answers targets it was given, records what was asked.
struct FakeList {
  std::map<std::string, ApiResponse> pages;
  std::vector<std::string> asked;
  ApiGet get() {
    return [this](const std::string& target) -> Result<ApiResponse> {
      asked.push_back(target);
      auto it = pages.find(target);
      if (it == pages.end()) return NotFound("no page " + target);
      return it->second;
    };
  }
};

std::vector<std::string> ids(const ApiResponse& r) {
  std::vector<std::string> out;
  const json body = json::parse(r.body);
  for (const auto& n : body["items"]) out.push_back(n["id"]);
  return out;
}

TEST(ApiList, FollowsContinueUntilTheLastPage) {
  FakeList f;
  f.pages["/v1/nodes?selector=site%3Da&limit=2"] = {
      200, R"({"items":[{"id":"a"},{"id":"b"}],"continue":"b"})"};
  f.pages["/v1/nodes?selector=site%3Da&limit=2&continue=b"] = {
      200, R"({"items":[{"id":"c"},{"id":"d"}],"continue":"d"})"};
  f.pages["/v1/nodes?selector=site%3Da&limit=2&continue=d"] = {200, R"({"items":[{"id":"e"}]})"};
  auto r = collect_pages(f.get(), "/v1/nodes?selector=site%3Da", 2);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(ids(*r), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(f.asked.size(), 3u);
}

TEST(ApiList, StartsTheQueryWhenThePathHasNone) {
  FakeList f;
  f.pages["/v1/nodes?limit=500"] = {200, R"({"items":[]})"};
  auto r = collect_pages(f.get(), "/v1/nodes", 500);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(ids(*r).empty());
}

TEST(ApiList, EncodesTheContinueToken) {
  FakeList f;
  f.pages["/v1/nodes?limit=1"] = {200, R"({"items":[{"id":"a b"}],"continue":"a b&c"})"};
  f.pages["/v1/nodes?limit=1&continue=a%20b%26c"] = {200, R"({"items":[{"id":"z"}]})"};
  auto r = collect_pages(f.get(), "/v1/nodes", 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(ids(*r), (std::vector<std::string>{"a b", "z"}));
}

TEST(ApiList, AnHttpErrorOnAnyPageIsReturnedAsIs) {
  FakeList f;
  f.pages["/v1/nodes?limit=1"] = {200, R"({"items":[{"id":"a"}],"continue":"a"})"};
  f.pages["/v1/nodes?limit=1&continue=a"] = {401, R"({"error":"invalid bearer token"})"};
  auto r = collect_pages(f.get(), "/v1/nodes", 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("invalid bearer token"), std::string::npos);
}

TEST(ApiList, ARepeatedContinueTokenEndsWithAnErrorInsteadOfLoopingForever) {
  FakeList f;
  f.pages["/v1/nodes?limit=1"] = {200, R"({"items":[{"id":"a"}],"continue":"a"})"};
  f.pages["/v1/nodes?limit=1&continue=a"] = {200, R"({"items":[{"id":"a"}],"continue":"a"})"};
  auto r = collect_pages(f.get(), "/v1/nodes", 1);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(f.asked.size(), 2u);
}

TEST(ApiList, APageThatIsNotAListIsAnError) {
  FakeList f;
  f.pages["/v1/nodes?limit=1"] = {200, "<html>"};
  EXPECT_EQ(collect_pages(f.get(), "/v1/nodes", 1).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(collect_pages(f.get(), "/v1/nodes", 0).status().code(), StatusCode::kInvalidArgument);
}

TEST(ApiList, TransportErrorsArePassedOn) {
  FakeList f;  // no pages: NotFound from the fake transport
  EXPECT_EQ(collect_pages(f.get(), "/v1/nodes", 1).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ganglion::cloud
