// Communicator: the only door between algorithms and MPI.
//
// A Comm is either an MPI communicator or a serial one (size 1, no MPI at all),
// so algorithms and their unit tests run unchanged in a single process.
// Every collective counts the bytes this rank sends (`stats()`), which the
// benchmarks report as measured communication volume.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

namespace segrec {

enum class Op { kSum, kMin, kMax };

/// Value with the global index where it occurs; maxloc keeps the largest
/// value and, on ties, the smallest index (independent of the rank count).
struct ValueIndex {
  double value;
  std::int64_t index;
};

/// Bytes and calls issued by this rank, per collective kind.
struct CommStats {
  std::uint64_t allreduce_calls = 0, allreduce_bytes = 0;  // incl. nonblocking ones
  std::uint64_t reduce_scatter_calls = 0, reduce_scatter_bytes = 0;
  std::uint64_t bcast_calls = 0, bcast_bytes = 0;
  std::uint64_t gather_calls = 0, gather_bytes = 0;
  std::uint64_t alltoall_calls = 0, alltoall_bytes = 0;
  std::uint64_t shift_calls = 0, shift_bytes = 0;  // ring_shift
};

/// RAII for MPI_Init_thread / MPI_Finalize. Construct once in main.
/// Installs MPI_ERRORS_RETURN so every MPI failure becomes an IoError.
class MpiEnvironment {
 public:
  MpiEnvironment(int* argc, char*** argv);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;
  static bool initialized();
  /// Registers a function run just before MPI_Finalize (I/O libraries close files).
  static void at_finalize(void (*fn)());
  /// Ends every process of the job with `code` (used for non-collective errors).
  [[noreturn]] static void abort(int code);
};

namespace detail {
struct MpiCommHandle;  // holds an MPI_Comm; defined in comm.cpp
/// MPI datatype id for T (0: char, 1: int32, 2: int64, 3: uint32, 4: uint64,
/// 5: float, 6: double, 7: uint8, 8: uint16).
template <class T>
constexpr int dtype_id() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, char>)
    return 0;
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return 1;
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return 2;
  else if constexpr (std::is_same_v<U, std::uint32_t>)
    return 3;
  else if constexpr (std::is_same_v<U, std::uint64_t>)
    return 4;
  else if constexpr (std::is_same_v<U, float>)
    return 5;
  else if constexpr (std::is_same_v<U, double>)
    return 6;
  else if constexpr (std::is_same_v<U, std::uint8_t>)
    return 7;
  else if constexpr (std::is_same_v<U, std::uint16_t>)
    return 8;
  else
    static_assert(sizeof(T) == 0, "unsupported element type for Comm");
}
}  // namespace detail

class Comm;

/// A nonblocking collective in flight (RAII). wait() completes it and raises
/// an IoError on failure; test() lets it progress (MPI progresses a
/// collective only inside MPI calls unless the library has a progress thread).
/// The destructor waits, except while an exception unwinds the stack (the
/// job is about to be aborted then, and waiting could hang).
class Request {
 public:
  Request() = default;
  Request(Request&&) noexcept;
  Request& operator=(Request&&) noexcept;
  ~Request();
  void wait();
  /// True once complete.
  bool test();
  bool active() const { return handle_ != nullptr; }

 private:
  friend class Comm;
  void finish() noexcept;   // wait (unless unwinding) and free
  void* handle_ = nullptr;  // the MPI requests (one per chunk), owned
  std::size_t bytes_ = 0;
  int kind_ = 1;  // watchdog::Kind reported while waiting (1: allreduce)
};

/// Memory shared by the ranks of one node (RAII over MPI_Win_allocate_shared):
/// each rank of a node communicator (Comm::node()) contributes `count`
/// elements; part(q) is node rank q's part, readable and writable by every
/// rank of the node. fence() is collective over the node: every write made
/// before it, by any rank, is visible to every read after it. Over a serial
/// communicator it is ordinary memory. The node communicator must outlive
/// the window (freeing it is collective over the node).
class SharedWindow {
 public:
  SharedWindow() = default;
  SharedWindow(SharedWindow&&) noexcept;
  SharedWindow& operator=(SharedWindow&&) noexcept;
  ~SharedWindow();
  template <class T>
  T* part(int q) const {
    return static_cast<T*>(parts_[static_cast<std::size_t>(q)]);
  }
  void fence() const;
  bool empty() const { return parts_.empty(); }

 private:
  friend class Comm;
  void release() noexcept;
  void* win_ = nullptr;   // MPI_Win*, owned (null when serial)
  void* comm_ = nullptr;  // MPI_Comm of the node (borrowed)
  std::vector<void*> parts_;
  std::vector<char> local_;  // serial storage
};

class Comm {
 public:
  /// Serial communicator: rank 0 of 1, collectives are local copies.
  Comm();
  /// MPI_COMM_WORLD (duplicated, freed on destruction). Requires MPI to be initialised.
  static Comm world();
  /// World when MPI is initialised, serial otherwise.
  static Comm world_or_serial();

  Comm(Comm&&) noexcept;
  Comm& operator=(Comm&&) noexcept;
  ~Comm();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  bool is_mpi() const { return handle_ != nullptr; }

  /// New communicator of the ranks passing the same `color`, ordered by `key` (MPI_Comm_split).
  Comm split(int color, int key) const;
  /// The ranks of this communicator that share memory with this one (one node;
  /// MPI_Comm_split_type SHARED), in rank order. Serial: a serial communicator.
  Comm node() const;
  /// Collective over this communicator, which must be a node (see node()):
  /// `count` elements of `elem` bytes per rank in one shared window.
  SharedWindow allocate_shared(std::size_t count, std::size_t elem) const;

  void barrier() const;

  // ---- allreduce (in place) ------------------------------------------------
  template <class T>
  void allreduce(std::span<T> data, Op op = Op::kSum) const {
    allreduce_raw(data.data(), data.size(), detail::dtype_id<T>(), sizeof(T), op);
  }
  template <class T>
  void allreduce(std::vector<T>& v, Op op = Op::kSum) const {
    allreduce(std::span<T>(v), op);
  }
  /// Any Eigen Matrix or Array (contiguous storage).
  template <class Derived>
  void allreduce(Eigen::PlainObjectBase<Derived>& m, Op op = Op::kSum) const {
    allreduce(std::span<typename Derived::Scalar>(m.data(), static_cast<std::size_t>(m.size())),
              op);
  }
  /// Nonblocking in-place allreduce (MPI_Iallreduce): `data` must stay alive
  /// and untouched until the request completes. Serial: complete at once.
  template <class T>
  Request iallreduce(std::span<T> data, Op op = Op::kSum) const {
    return iallreduce_raw(data.data(), data.size(), detail::dtype_id<T>(), sizeof(T), op);
  }

  /// Nonblocking broadcast (MPI_Ibcast): `data` must stay alive, untouched on the root and
  /// unread elsewhere, until the request completes. Serial: complete at once.
  template <class T>
  Request ibroadcast(std::span<T> data, int root = 0) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return ibroadcast_raw(data.data(), data.size() * sizeof(T), root);
  }

  // ---- reduce-scatter and allgather of blocks (sharded updates) -------------
  /// In place. `offsets`: size()+1 ascending element offsets into `data`, the
  /// same on every rank; rank r owns block [offsets[r], offsets[r+1]).
  /// Afterwards each rank's own block holds the reduction of that block over
  /// all ranks, combined in rank order (((x_0 + x_1) + x_2) + ...: the same bits
  /// however the ranks are placed on hosts); its other blocks are unchanged.
  template <class T>
  void reduce_scatter(std::span<T> data, std::span<const std::int64_t> offsets,
                      Op op = Op::kSum) const {
    reduce_scatter_raw(data.data(), offsets, detail::dtype_id<T>(), sizeof(T), op);
  }
  /// The inverse, in place: every rank's block of `data` (its own block filled
  /// in) is copied to every other rank.
  template <class T>
  void allgather_blocks(std::span<T> data, std::span<const std::int64_t> offsets) const {
    allgather_blocks_raw(data.data(), offsets, detail::dtype_id<T>(), sizeof(T));
  }

  template <class T>
  T allreduce_value(T v, Op op = Op::kSum) const {
    allreduce(std::span<T>(&v, 1), op);
    return v;
  }
  /// Largest value over all ranks; ties go to the smallest index.
  ValueIndex allreduce_maxloc(ValueIndex v) const;
  /// Exclusive prefix sum over ranks (rank 0 gets 0).
  std::int64_t exscan_sum(std::int64_t v) const;

  // ---- broadcast --------------------------------------------------------------
  template <class T>
  void broadcast(std::span<T> data, int root = 0) const {
    broadcast_raw(data.data(), data.size() * sizeof(T), root);
  }
  template <class T>
  void broadcast(std::vector<T>& v, int root = 0) const {
    std::uint64_t n = v.size();
    broadcast(std::span<std::uint64_t>(&n, 1), root);
    v.resize(n);
    broadcast(std::span<T>(v), root);
  }
  void broadcast(std::string& s, int root = 0) const;
  template <class Derived>
  void broadcast(Eigen::PlainObjectBase<Derived>& m, int root = 0) const {
    std::int64_t shape[2] = {m.rows(), m.cols()};
    broadcast(std::span<std::int64_t>(shape, 2), root);
    m.resize(shape[0], shape[1]);
    broadcast(std::span<typename Derived::Scalar>(m.data(), static_cast<std::size_t>(m.size())),
              root);
  }

  // ---- gathers and all-to-all ----------------------------------------------------
  /// Concatenation of every rank's `local`, in rank order, on every rank.
  /// `counts` (optional) receives each rank's element count.
  template <class T>
  std::vector<T> allgatherv(std::span<const T> local,
                            std::vector<std::int64_t>* counts = nullptr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<std::int64_t> c;
    std::vector<char> bytes = allgatherv_raw(local.data(), local.size() * sizeof(T), c);
    std::vector<T> out(bytes.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    if (counts) {
      for (auto& x : c) x /= static_cast<std::int64_t>(sizeof(T));
      *counts = std::move(c);
    }
    return out;
  }
  template <class T>
  std::vector<T> allgatherv(const std::vector<T>& local,
                            std::vector<std::int64_t>* counts = nullptr) const {
    return allgatherv(std::span<const T>(local), counts);
  }
  /// Every rank's string, in rank order.
  std::vector<std::string> allgather_strings(const std::string& s) const;

  /// Sends send[r] to rank r; returns what each rank sent here, indexed by source.
  template <class T>
  std::vector<std::vector<T>> alltoallv(const std::vector<std::vector<T>>& send) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<std::span<const char>> views;
    views.reserve(send.size());
    for (const auto& s : send)
      views.emplace_back(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(T));
    std::vector<std::int64_t> recv_counts;
    std::vector<char> flat = alltoallv_raw(views, recv_counts);
    std::vector<std::vector<T>> out(static_cast<std::size_t>(size_));
    std::size_t off = 0;
    for (int r = 0; r < size_; ++r) {
      auto n = static_cast<std::size_t>(recv_counts[r]);
      out[r].resize(n / sizeof(T));
      if (n) std::memcpy(out[r].data(), flat.data() + off, n);
      off += n;
    }
    return out;
  }

  /// Flat all-to-all over a contiguous vector type V (std::vector or BigVector):
  /// `send` holds the messages for ranks 0..P-1 back to back,
  /// send_counts[r] elements for rank r. Returns everything received, by source
  /// rank, with recv_counts[r] elements from rank r. Peak memory is send + receive.
  template <class V>
  V alltoallv_flat(const V& send, const std::vector<std::int64_t>& send_counts,
                   std::vector<std::int64_t>& recv_counts) const {
    using T = typename V::value_type;
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<std::span<const char>> views;
    std::size_t off = 0;
    for (int r = 0; r < size_; ++r) {
      const auto n = static_cast<std::size_t>(send_counts[r]) * sizeof(T);
      views.emplace_back(reinterpret_cast<const char*>(send.data()) + off, n);
      off += n;
    }
    V out;
    alltoallv_into(views, recv_counts, [&](std::size_t bytes) {
      out.resize(bytes / sizeof(T));
      return reinterpret_cast<char*>(out.data());
    });
    for (auto& c : recv_counts) c /= static_cast<std::int64_t>(sizeof(T));
    return out;
  }

  // ---- ring shift ------------------------------------------------------------------
  /// Nonblocking: sends `send` to rank (rank()+1) mod size() and receives `recv` from rank
  /// (rank()-1) mod size(); `recv` must have the size that rank sends. Both buffers must
  /// stay alive and untouched until the request completes. Serial: copies send to recv.
  template <class T>
  Request ring_shift(std::span<const T> send, std::span<T> recv) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return ring_shift_raw(send.data(), send.size() * sizeof(T), recv.data(),
                          recv.size() * sizeof(T));
  }

  /// Raises the same error on every rank when any rank reports a failure:
  /// each rank passes its own message ("" = ok); if any is non-empty, every rank
  /// throws a collective error with the lowest failing rank's message and code
  /// (UsageError, DataError or IoError for codes 2, 3, 4; Error otherwise).
  void check_all(const std::string& local_error, int code) const;

  const CommStats& stats() const { return *stats_; }
  void reset_stats() const { *stats_ = CommStats{}; }

  /// Native handle for the I/O layer (MPI_Comm cast to void*; nullptr when serial).
  void* native() const;

 private:
  void adopt();  // a new handle_->comm: error handler, rank and size
  void check_block_offsets(const char* what, std::span<const std::int64_t> offsets) const;
  void allreduce_raw(void* data, std::size_t n, int dtype, std::size_t elem, Op op) const;
  Request iallreduce_raw(void* data, std::size_t n, int dtype, std::size_t elem, Op op) const;
  Request ibroadcast_raw(void* data, std::size_t bytes, int root) const;
  void reduce_scatter_raw(void* data, std::span<const std::int64_t> offsets, int dtype,
                          std::size_t elem, Op op) const;
  void allgather_blocks_raw(void* data, std::span<const std::int64_t> offsets, int dtype,
                            std::size_t elem) const;
  void broadcast_raw(void* data, std::size_t bytes, int root) const;
  Request ring_shift_raw(const void* send, std::size_t send_bytes, void* recv,
                         std::size_t recv_bytes) const;
  std::vector<char> allgatherv_raw(const void* data, std::size_t bytes,
                                   std::vector<std::int64_t>& counts) const;
  std::vector<char> alltoallv_raw(const std::vector<std::span<const char>>& send,
                                  std::vector<std::int64_t>& recv_counts) const;
  /// Receives into storage from `alloc(total_bytes)`; recv_counts are in bytes.
  void alltoallv_into(const std::vector<std::span<const char>>& send,
                      std::vector<std::int64_t>& recv_counts,
                      const std::function<char*(std::size_t)>& alloc) const;

  std::unique_ptr<detail::MpiCommHandle> handle_;
  int rank_ = 0;
  int size_ = 1;
  std::unique_ptr<CommStats> stats_;
};

/// Rows [begin, end) of an even block partition of n rows over `size` parts.
struct Block {
  std::int64_t begin, end;
  std::int64_t size() const { return end - begin; }
};
Block block_partition(std::int64_t n, int parts, int part);

}  // namespace segrec
