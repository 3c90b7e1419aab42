// Recursive-descent parser for the streaming SQL dialect (grammar in README.md).
//
// Never throws and never crashes on any input: errors come back as kInvalidArgument with a
// message "line L, column C: <what was expected>, found <what was there>" followed by the
// offending line and a caret. Nesting is bounded (kMaxExprDepth for expression trees, a
// recursion guard for the parser itself), so hostile input yields an error, not a stack
// overflow.
#pragma once

#include <string_view>

#include "base/status.h"
#include "stream/ast.h"

namespace ganglion::sql {

// Parses one statement, optionally followed by ';'.
Result<Statement> parse_statement(std::string_view sql);

// Parses a lone expression (tests, rule options such as a sink's condition).
Result<ExprPtr> parse_expression(std::string_view sql);

}  // namespace ganglion::sql
