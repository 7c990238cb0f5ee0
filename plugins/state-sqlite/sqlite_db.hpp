// A small Poco-free facade over one Poco Data SQLite session: typed parameters and columns, batched inserts,
// RAII transactions, prepared statements kept for reuse, and SQLite errors mapped to ork::PluginError codes. Not
// thread-safe: callers serialize.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace ork::sqlite {

// One SQL value: NULL, INTEGER or TEXT (the only storage classes this store uses).
using Value = std::variant<std::nullptr_t, int64_t, std::string>;
using Row = std::vector<Value>;

// How a result or batch column is read and bound.
enum class ColType { Int, Text };

// One column of a batched statement: every row's value, all of the same ColType (or NULL).
struct BatchColumn {
  ColType type;
  std::vector<Value> values;
};

class Db {
 public:
  // Opens (creating) the database file; busy_timeout_ms applies to every lock wait.
  Db(const std::string& path, int64_t busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one statement; returns the number of rows it changed.
  size_t exec(const std::string& sql, const std::vector<Value>& params = {});
  // Runs a query; `columns` gives the type of each selected column.
  std::vector<Row> query(const std::string& sql, const std::vector<Value>& params, const std::vector<ColType>& columns);
  // Runs one prepared statement once per row of `columns` (all the same length); returns rows changed.
  size_t exec_batch(const std::string& sql, std::vector<BatchColumn> columns);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// BEGIN IMMEDIATE (write) or BEGIN (read snapshot) now; ROLLBACK on destruction unless commit() ran.
class Transaction {
 public:
  enum class Mode { Read, Write };
  Transaction(Db& db, Mode mode);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace ork::sqlite
