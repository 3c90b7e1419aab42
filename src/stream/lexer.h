// Lexer for the streaming SQL dialect. Produces the whole token list up front; the parser
// works on it by index. Comments: `-- to end of line` and `/* ... */`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "stream/ast.h"

namespace ganglion::sql {

enum class TokenKind {
  kEnd,
  kIdent,        // bare identifier or keyword; text as written
  kQuotedIdent,  // `weird name`; text without the backquotes
  kInt,          // text as written, value in int_value
  kFloat,        // value in float_value
  kString,       // 'single' or "double" quoted; text is the decoded string
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kColon,
  kSemicolon,
  kStar,
  kPlus,
  kMinus,
  kSlash,
  kPercent,
  kAmp,
  kPipe,
  kCaret,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kArrow,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  std::int64_t int_value = 0;
  double float_value = 0;
  SourcePos pos;
  std::size_t offset = 0;  // byte offset of the first character
  std::size_t end = 0;     // byte offset just past the token
};

// How a token kind reads in an error message: "'('", "identifier", "end of input"...
std::string describe(const Token& t);

// Splits `sql` into tokens ending with one kEnd token (placed just past the last real token).
// Errors (unterminated string or comment, bad escape, stray character, integer out of
// range) come back formatted by format_error().
Result<std::vector<Token>> tokenize(std::string_view sql);

// "line L, column C: <message>\n<the source line>\n<spaces>^". Tabs in the source line
// are kept in the caret line so the caret lines up.
std::string format_error(std::string_view sql, SourcePos pos, std::string_view message);

}  // namespace ganglion::sql
