#include "stream/lexer.h"

#include <charconv>
#include <cmath>

namespace ganglion::sql {
namespace {

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;  // UTF-8 letters in identifiers
}
bool ident_char(char c) { return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)); }

class Lexer {
 public:
  explicit Lexer(std::string_view sql) : sql_(sql) {}

  Result<std::vector<Token>> run() {
    std::vector<Token> out;
    SourcePos last_end{1, 1};
    std::size_t last_end_offset = 0;
    for (;;) {
      GANGLION_RETURN_IF_ERROR(skip_space_and_comments());
      if (i_ >= sql_.size()) break;
      Token t;
      t.pos = pos_;
      t.offset = i_;
      GANGLION_RETURN_IF_ERROR(next(t));
      t.end = i_;
      last_end = pos_;
      last_end_offset = i_;
      out.push_back(std::move(t));
    }
    Token end;
    end.kind = TokenKind::kEnd;
    end.pos = last_end;
    end.offset = end.end = last_end_offset;
    out.push_back(std::move(end));
    return out;
  }

 private:
  char peek(std::size_t k = 0) const { return i_ + k < sql_.size() ? sql_[i_ + k] : '\0'; }
  void advance() {
    if (sql_[i_] == '\n') {
      ++pos_.line;
      pos_.column = 1;
    } else {
      ++pos_.column;
    }
    ++i_;
  }
  Status error(SourcePos at, std::string_view message) const {
    return InvalidArgument(format_error(sql_, at, message));
  }

  Status skip_space_and_comments() {
    for (;;) {
      if (i_ >= sql_.size()) return Status::Ok();
      char c = sql_[i_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        advance();
      } else if (c == '-' && peek(1) == '-') {
        while (i_ < sql_.size() && sql_[i_] != '\n') advance();
      } else if (c == '/' && peek(1) == '*') {
        SourcePos start = pos_;
        advance();
        advance();
        for (;;) {
          if (i_ >= sql_.size()) return error(start, "unterminated comment");
          if (sql_[i_] == '*' && peek(1) == '/') {
            advance();
            advance();
            break;
          }
          advance();
        }
      } else {
        return Status::Ok();
      }
    }
  }

  Status next(Token& t) {
    const char c = sql_[i_];
    if (ident_start(c)) {
      while (i_ < sql_.size() && ident_char(sql_[i_])) advance();
      t.kind = TokenKind::kIdent;
      t.text.assign(sql_.substr(t.offset, i_ - t.offset));
      return Status::Ok();
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1))))) {
      return number(t);
    }
    if (c == '\'' || c == '"') return string(t, c);
    if (c == '`') {
      advance();
      std::size_t start = i_;
      while (i_ < sql_.size() && sql_[i_] != '`') advance();
      if (i_ >= sql_.size()) return error(t.pos, "unterminated quoted identifier");
      if (i_ == start) return error(t.pos, "empty quoted identifier");
      t.text.assign(sql_.substr(start, i_ - start));
      advance();
      t.kind = TokenKind::kQuotedIdent;
      return Status::Ok();
    }
    auto one = [&](TokenKind k) {
      t.kind = k;
      advance();
      return Status::Ok();
    };
    auto two = [&](TokenKind k) {
      t.kind = k;
      advance();
      advance();
      return Status::Ok();
    };
    switch (c) {
      case '(':
        return one(TokenKind::kLParen);
      case ')':
        return one(TokenKind::kRParen);
      case '[':
        return one(TokenKind::kLBracket);
      case ']':
        return one(TokenKind::kRBracket);
      case ',':
        return one(TokenKind::kComma);
      case '.':
        return one(TokenKind::kDot);
      case ':':
        return one(TokenKind::kColon);
      case ';':
        return one(TokenKind::kSemicolon);
      case '*':
        return one(TokenKind::kStar);
      case '+':
        return one(TokenKind::kPlus);
      case '-':
        return peek(1) == '>' ? two(TokenKind::kArrow) : one(TokenKind::kMinus);
      case '/':
        return one(TokenKind::kSlash);
      case '%':
        return one(TokenKind::kPercent);
      case '&':
        return one(TokenKind::kAmp);
      case '|':
        return one(TokenKind::kPipe);
      case '^':
        return one(TokenKind::kCaret);
      case '=':
        return peek(1) == '=' ? two(TokenKind::kEq) : one(TokenKind::kEq);
      case '!':
        if (peek(1) == '=') return two(TokenKind::kNe);
        break;
      case '<':
        if (peek(1) == '=') return two(TokenKind::kLe);
        if (peek(1) == '>') return two(TokenKind::kNe);
        return one(TokenKind::kLt);
      case '>':
        return peek(1) == '=' ? two(TokenKind::kGe) : one(TokenKind::kGt);
      default:
        break;
    }
    std::string m = "unexpected character '";
    if (std::isprint(static_cast<unsigned char>(c))) {
      m += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      m += "\\x";
      m += kHex[(static_cast<unsigned char>(c) >> 4) & 15];
      m += kHex[static_cast<unsigned char>(c) & 15];
    }
    m += "'";
    return error(t.pos, m);
  }

  Status number(Token& t) {
    bool is_float = false;
    while (std::isdigit(static_cast<unsigned char>(peek()))) advance();
    if (peek() == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))) {
      is_float = true;
      advance();
      while (std::isdigit(static_cast<unsigned char>(peek()))) advance();
    } else if (peek() == '.' && !ident_start(peek(1)) && peek(1) != '*') {
      // "1." is a float; "s.field" never reaches here because it starts with a letter.
      is_float = true;
      advance();
    }
    if ((peek() == 'e' || peek() == 'E') && (std::isdigit(static_cast<unsigned char>(peek(1))) ||
                                             ((peek(1) == '+' || peek(1) == '-') &&
                                              std::isdigit(static_cast<unsigned char>(peek(2)))))) {
      is_float = true;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      while (std::isdigit(static_cast<unsigned char>(peek()))) advance();
    }
    if (ident_char(peek())) return error(pos_, "invalid number");
    std::string_view text = sql_.substr(t.offset, i_ - t.offset);
    t.text.assign(text);
    if (is_float) {
      double d = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), d);
      if (r.ec != std::errc() || !std::isfinite(d)) return error(t.pos, "number out of range");
      t.kind = TokenKind::kFloat;
      t.float_value = d;
    } else {
      std::int64_t v = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec != std::errc()) return error(t.pos, "integer out of range");
      t.kind = TokenKind::kInt;
      t.int_value = v;
    }
    return Status::Ok();
  }

  Status string(Token& t, char quote) {
    advance();
    std::string s;
    for (;;) {
      if (i_ >= sql_.size()) return error(t.pos, "unterminated string");
      char c = sql_[i_];
      if (c == quote) {
        advance();
        break;
      }
      if (c == '\\') {
        SourcePos at = pos_;
        advance();
        if (i_ >= sql_.size()) return error(t.pos, "unterminated string");
        char e = sql_[i_];
        switch (e) {
          case 'n':
            s += '\n';
            break;
          case 't':
            s += '\t';
            break;
          case 'r':
            s += '\r';
            break;
          case '\\':
            s += '\\';
            break;
          case '\'':
            s += '\'';
            break;
          case '"':
            s += '"';
            break;
          default:
            return error(at, "bad escape sequence in string");
        }
        advance();
        continue;
      }
      s += c;
      advance();
    }
    t.kind = TokenKind::kString;
    t.text = std::move(s);
    return Status::Ok();
  }

  std::string_view sql_;
  std::size_t i_ = 0;
  SourcePos pos_;
};

}  // namespace

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kEnd:
      return "end of input";
    case TokenKind::kIdent:
      return "'" + t.text + "'";
    case TokenKind::kQuotedIdent:
      return "`" + t.text + "`";
    case TokenKind::kInt:
    case TokenKind::kFloat:
      return "number " + t.text;
    case TokenKind::kString:
      return "string";
    case TokenKind::kLParen:
      return "'('";
    case TokenKind::kRParen:
      return "')'";
    case TokenKind::kLBracket:
      return "'['";
    case TokenKind::kRBracket:
      return "']'";
    case TokenKind::kComma:
      return "','";
    case TokenKind::kDot:
      return "'.'";
    case TokenKind::kColon:
      return "':'";
    case TokenKind::kSemicolon:
      return "';'";
    case TokenKind::kStar:
      return "'*'";
    case TokenKind::kPlus:
      return "'+'";
    case TokenKind::kMinus:
      return "'-'";
    case TokenKind::kSlash:
      return "'/'";
    case TokenKind::kPercent:
      return "'%'";
    case TokenKind::kAmp:
      return "'&'";
    case TokenKind::kPipe:
      return "'|'";
    case TokenKind::kCaret:
      return "'^'";
    case TokenKind::kEq:
      return "'='";
    case TokenKind::kNe:
      return "'!='";
    case TokenKind::kLt:
      return "'<'";
    case TokenKind::kLe:
      return "'<='";
    case TokenKind::kGt:
      return "'>'";
    case TokenKind::kGe:
      return "'>='";
    case TokenKind::kArrow:
      return "'->'";
  }
  return "token";
}

Result<std::vector<Token>> tokenize(std::string_view sql) { return Lexer(sql).run(); }

std::string format_error(std::string_view sql, SourcePos pos, std::string_view message) {
  std::string out =
      "line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column) + ": ";
  out += message;
  // Find the offending line.
  std::size_t start = 0;
  for (int l = 1; l < pos.line; ++l) {
    std::size_t nl = sql.find('\n', start);
    if (nl == std::string_view::npos) return out;
    start = nl + 1;
  }
  std::size_t end = sql.find('\n', start);
  std::string_view line = sql.substr(start, end == std::string_view::npos ? sql.npos : end - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  out += '\n';
  out += line;
  out += '\n';
  for (int c = 1; c < pos.column; ++c) {
    std::size_t k = static_cast<std::size_t>(c - 1);
    out += (k < line.size() && line[k] == '\t') ? '\t' : ' ';
  }
  out += '^';
  return out;
}

}  // namespace ganglion::sql
