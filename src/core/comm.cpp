#include "segrec/core/comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "segrec/core/blas.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/watchdog.hpp"

namespace segrec {

namespace detail {
struct MpiCommHandle {
  MPI_Comm comm = MPI_COMM_NULL;
  ~MpiCommHandle() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};
}  // namespace detail

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw IoError(detail::concat("MPI error in ", what, ": ", std::string(msg, len)));
}

MPI_Datatype mpi_type(int id) {
  switch (id) {
    case 0:
      return MPI_CHAR;
    case 1:
      return MPI_INT32_T;
    case 2:
      return MPI_INT64_T;
    case 3:
      return MPI_UINT32_T;
    case 4:
      return MPI_UINT64_T;
    case 5:
      return MPI_FLOAT;
    case 6:
      return MPI_DOUBLE;
    case 7:
      return MPI_UINT8_T;
    case 8:
      return MPI_UINT16_T;
    default:
      SEGREC_ASSERT(false, "bad dtype id ", id);
  }
}

MPI_Op mpi_op(Op op) {
  switch (op) {
    case Op::kSum:
      return MPI_SUM;
    case Op::kMin:
      return MPI_MIN;
    case Op::kMax:
      return MPI_MAX;
  }
  return MPI_SUM;
}

MPI_Comm as_mpi(const std::unique_ptr<detail::MpiCommHandle>& h) { return h->comm; }

// Largest message one MPI call carries here: counts are ints.
constexpr std::size_t kMaxChunk = std::size_t{1} << 30;

// MPI_Bcast of `bytes` from `root` in messages of at most kMaxChunk (no counting).
void bcast_chunked(char* p, std::size_t bytes, int root, MPI_Comm comm) {
  for (std::size_t off = 0; off < bytes; off += kMaxChunk) {
    const auto cnt = static_cast<int>(std::min(kMaxChunk, bytes - off));
    check_mpi(MPI_Bcast(p + off, cnt, MPI_BYTE, root, comm), "MPI_Bcast");
  }
}

}  // namespace

// ---- environment -----------------------------------------------------------------

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) {
  blas::configure(argv != nullptr ? *argv : nullptr);  // may re-execute the process
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

namespace {
std::vector<void (*)()>& finalize_hooks() {
  static std::vector<void (*)()> hooks;
  return hooks;
}
}  // namespace

void MpiEnvironment::at_finalize(void (*fn)()) { finalize_hooks().push_back(fn); }

MpiEnvironment::~MpiEnvironment() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto fn : finalize_hooks()) fn();
  MPI_Finalize();
}

bool MpiEnvironment::initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

void MpiEnvironment::abort(int code) {
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

// ---- Comm ---------------------------------------------------------------------------

Comm::Comm() : stats_(std::make_unique<CommStats>()) {}

void Comm::adopt() {
  MPI_Comm_set_errhandler(handle_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(handle_->comm, &rank_);
  MPI_Comm_size(handle_->comm, &size_);
}

Comm Comm::world() {
  SEGREC_ASSERT(MpiEnvironment::initialized(), "Comm::world() needs MPI");
  Comm c;
  c.handle_ = std::make_unique<detail::MpiCommHandle>();
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &c.handle_->comm), "MPI_Comm_dup");
  c.adopt();
  return c;
}

Comm Comm::world_or_serial() { return MpiEnvironment::initialized() ? world() : Comm(); }

Comm::Comm(Comm&&) noexcept = default;
Comm& Comm::operator=(Comm&&) noexcept = default;
Comm::~Comm() = default;

void* Comm::native() const { return handle_ ? reinterpret_cast<void*>(&handle_->comm) : nullptr; }

Comm Comm::split(int color, int key) const {
  Comm c;
  if (!handle_) return c;
  c.handle_ = std::make_unique<detail::MpiCommHandle>();
  const watchdog::InFlight wd(watchdog::Kind::kCommSplit, 0);
  check_mpi(MPI_Comm_split(as_mpi(handle_), color, key, &c.handle_->comm), "MPI_Comm_split");
  c.adopt();
  return c;
}

Comm Comm::node() const {
  Comm c;
  if (!handle_) return c;
  c.handle_ = std::make_unique<detail::MpiCommHandle>();
  const watchdog::InFlight wd(watchdog::Kind::kCommSplit, 0);
  check_mpi(MPI_Comm_split_type(as_mpi(handle_), MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL,
                                &c.handle_->comm),
            "MPI_Comm_split_type");
  c.adopt();
  return c;
}

SharedWindow Comm::allocate_shared(std::size_t count, std::size_t elem) const {
  SharedWindow w;
  if (!handle_) {
    w.local_.assign(std::max<std::size_t>(1, count * elem), 0);
    w.parts_.push_back(w.local_.data());
    return w;
  }
  auto win = std::make_unique<MPI_Win>(MPI_WIN_NULL);
  void* base = nullptr;
  // Contiguous parts; MPI aligns each part for any type.
  check_mpi(MPI_Win_allocate_shared(static_cast<MPI_Aint>(count * elem), static_cast<int>(elem),
                                    MPI_INFO_NULL, as_mpi(handle_), &base, win.get()),
            "MPI_Win_allocate_shared");
  MPI_Win_set_errhandler(*win, MPI_ERRORS_RETURN);
  w.win_ = win.release();
  w.comm_ = &handle_->comm;
  w.parts_.resize(static_cast<std::size_t>(size_));
  for (int q = 0; q < size_; ++q) {
    MPI_Aint bytes = 0;
    int disp = 0;
    check_mpi(MPI_Win_shared_query(*static_cast<MPI_Win*>(w.win_), q, &bytes, &disp,
                                   &w.parts_[static_cast<std::size_t>(q)]),
              "MPI_Win_shared_query");
  }
  // One passive-target epoch for the window's life: fence() synchronises.
  check_mpi(MPI_Win_lock_all(MPI_MODE_NOCHECK, *static_cast<MPI_Win*>(w.win_)), "MPI_Win_lock_all");
  return w;
}

SharedWindow::SharedWindow(SharedWindow&& o) noexcept
    : win_(o.win_), comm_(o.comm_), parts_(std::move(o.parts_)), local_(std::move(o.local_)) {
  o.win_ = nullptr;
  o.parts_.clear();
  if (!local_.empty()) parts_.assign(1, local_.data());
}

SharedWindow& SharedWindow::operator=(SharedWindow&& o) noexcept {
  if (this != &o) {
    release();
    win_ = o.win_;
    comm_ = o.comm_;
    parts_ = std::move(o.parts_);
    local_ = std::move(o.local_);
    if (!local_.empty()) parts_.assign(1, local_.data());
    o.win_ = nullptr;
    o.parts_.clear();
  }
  return *this;
}

SharedWindow::~SharedWindow() { release(); }

void SharedWindow::release() noexcept {
  if (win_ == nullptr) return;
  auto* win = static_cast<MPI_Win*>(win_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  // MPI_Win_free is collective: skip it while an error of this rank alone unwinds (the job
  // is being aborted); a collective error unwinds every rank, which free it together.
  if (!finalized && (std::uncaught_exceptions() == 0 || detail::last_error_collective)) {
    MPI_Win_unlock_all(*win);
    MPI_Win_free(win);
  }
  delete win;
  win_ = nullptr;
  parts_.clear();
}

void SharedWindow::fence() const {
  if (win_ == nullptr) return;
  auto& win = *static_cast<MPI_Win*>(win_);
  const watchdog::InFlight wd(watchdog::Kind::kBarrier, 0);
  check_mpi(MPI_Win_sync(win), "MPI_Win_sync");
  check_mpi(MPI_Barrier(*static_cast<MPI_Comm*>(comm_)), "MPI_Barrier");
  check_mpi(MPI_Win_sync(win), "MPI_Win_sync");
}

void Comm::barrier() const {
  if (!handle_) return;
  const watchdog::InFlight wd(watchdog::Kind::kBarrier, 0);
  check_mpi(MPI_Barrier(as_mpi(handle_)), "MPI_Barrier");
}

void Comm::allreduce_raw(void* data, std::size_t n, int dtype, std::size_t elem, Op op) const {
  if (!handle_ || n == 0) return;
  stats_->allreduce_calls++;
  stats_->allreduce_bytes += n * elem;
  const watchdog::InFlight wd(watchdog::Kind::kAllreduce, n * elem);
  auto* p = static_cast<char*>(data);
  const std::size_t step = kMaxChunk / elem;
  for (std::size_t off = 0; off < n; off += step) {
    const auto cnt = static_cast<int>(std::min(step, n - off));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + off * elem, cnt, mpi_type(dtype), mpi_op(op),
                            as_mpi(handle_)),
              "MPI_Allreduce");
  }
}

// ---- nonblocking allreduce ----------------------------------------------------------------

namespace {
struct RequestSet {
  std::vector<MPI_Request> reqs;  // one per chunk of at most kMaxChunk bytes
};
RequestSet* as_set(void* h) { return static_cast<RequestSet*>(h); }
}  // namespace

Request::Request(Request&& o) noexcept : handle_(o.handle_), bytes_(o.bytes_), kind_(o.kind_) {
  o.handle_ = nullptr;
}

Request& Request::operator=(Request&& o) noexcept {
  if (this != &o) {
    finish();
    handle_ = o.handle_;
    bytes_ = o.bytes_;
    kind_ = o.kind_;
    o.handle_ = nullptr;
  }
  return *this;
}

Request::~Request() { finish(); }

void Request::finish() noexcept {
  if (!handle_) return;
  if (std::uncaught_exceptions() == 0) {
    try {
      wait();  // completes and frees the requests
      return;
    } catch (...) {  // a failed collective: the caller's error path decides
    }
  }
  delete as_set(handle_);
  handle_ = nullptr;
}

void Request::wait() {
  if (!handle_) return;
  auto* set = as_set(handle_);
  const watchdog::InFlight wd(static_cast<watchdog::Kind>(kind_), bytes_);
  std::unique_ptr<RequestSet> owned(set);
  handle_ = nullptr;
  check_mpi(MPI_Waitall(static_cast<int>(set->reqs.size()), set->reqs.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall");
}

bool Request::test() {
  if (!handle_) return true;
  auto* set = as_set(handle_);
  int done = 0;
  check_mpi(
      MPI_Testall(static_cast<int>(set->reqs.size()), set->reqs.data(), &done, MPI_STATUSES_IGNORE),
      "MPI_Testall");
  if (done) {
    delete set;
    handle_ = nullptr;
  }
  return done != 0;
}

Request Comm::iallreduce_raw(void* data, std::size_t n, int dtype, std::size_t elem, Op op) const {
  Request r;
  if (!handle_ || n == 0) return r;
  stats_->allreduce_calls++;
  stats_->allreduce_bytes += n * elem;
  auto set = std::make_unique<RequestSet>();
  auto* p = static_cast<char*>(data);
  const std::size_t step = kMaxChunk / elem;
  for (std::size_t off = 0; off < n; off += step) {
    const auto cnt = static_cast<int>(std::min(step, n - off));
    set->reqs.push_back(MPI_REQUEST_NULL);
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, p + off * elem, cnt, mpi_type(dtype), mpi_op(op),
                             as_mpi(handle_), &set->reqs.back()),
              "MPI_Iallreduce");
  }
  r.handle_ = set.release();
  r.bytes_ = n * elem;
  return r;
}

Request Comm::ibroadcast_raw(void* data, std::size_t bytes, int root) const {
  Request r;
  if (!handle_ || bytes == 0) return r;
  stats_->bcast_calls++;
  if (rank_ == root) stats_->bcast_bytes += bytes;
  auto set = std::make_unique<RequestSet>();
  auto* p = static_cast<char*>(data);
  for (std::size_t off = 0; off < bytes; off += kMaxChunk) {
    const auto cnt = static_cast<int>(std::min(kMaxChunk, bytes - off));
    set->reqs.push_back(MPI_REQUEST_NULL);
    check_mpi(MPI_Ibcast(p + off, cnt, MPI_BYTE, root, as_mpi(handle_), &set->reqs.back()),
              "MPI_Ibcast");
  }
  r.handle_ = set.release();
  r.bytes_ = bytes;
  r.kind_ = static_cast<int>(watchdog::Kind::kBroadcast);
  return r;
}

// ---- ring shift ----------------------------------------------------------------------------

Request Comm::ring_shift_raw(const void* send, std::size_t send_bytes, void* recv,
                             std::size_t recv_bytes) const {
  Request r;
  if (!handle_) {
    SEGREC_ASSERT(send_bytes == recv_bytes, "a serial ring shift sends to itself");
    if (send_bytes) std::memmove(recv, send, send_bytes);
    return r;
  }
  stats_->shift_calls++;
  stats_->shift_bytes += send_bytes;
  const int to = (rank_ + 1) % size_, from = (rank_ + size_ - 1) % size_;
  auto set = std::make_unique<RequestSet>();
  // Messages of at most kMaxChunk bytes; the receiver posts as many as the sender.
  const auto* s = static_cast<const char*>(send);
  auto* d = static_cast<char*>(recv);
  for (std::size_t off = 0; off == 0 || off < recv_bytes; off += kMaxChunk) {
    const auto cnt = static_cast<int>(std::min(kMaxChunk, recv_bytes - off));
    set->reqs.push_back(MPI_REQUEST_NULL);
    check_mpi(MPI_Irecv(d + off, cnt, MPI_BYTE, from, 11, as_mpi(handle_), &set->reqs.back()),
              "MPI_Irecv");
  }
  for (std::size_t off = 0; off == 0 || off < send_bytes; off += kMaxChunk) {
    const auto cnt = static_cast<int>(std::min(kMaxChunk, send_bytes - off));
    set->reqs.push_back(MPI_REQUEST_NULL);
    check_mpi(MPI_Isend(s + off, cnt, MPI_BYTE, to, 11, as_mpi(handle_), &set->reqs.back()),
              "MPI_Isend");
  }
  r.handle_ = set.release();
  r.bytes_ = send_bytes;
  r.kind_ = static_cast<int>(watchdog::Kind::kAlltoall);
  return r;
}

// ---- reduce-scatter and allgather of blocks ------------------------------------------------

void Comm::check_block_offsets(const char* what, std::span<const std::int64_t> offsets) const {
  if (offsets.size() != static_cast<std::size_t>(size_) + 1)
    throw Error(detail::concat(what, ": ", offsets.size(), " offsets for ", size_,
                               " ranks (need ranks + 1)"),
                kExitOther, /*collective=*/true);
}

void Comm::reduce_scatter_raw(void* data, std::span<const std::int64_t> offsets, int dtype,
                              std::size_t elem, Op op) const {
  check_block_offsets("reduce_scatter", offsets);
  if (!handle_ || size_ == 1) return;
  const auto total = static_cast<std::size_t>(offsets[size_] - offsets[0]);
  if (total == 0) return;
  stats_->reduce_scatter_calls++;
  stats_->reduce_scatter_bytes += total * elem;
  const watchdog::InFlight wd(watchdog::Kind::kAllreduce, total * elem);
  // Direct: every rank sends block q to rank q, and rank q adds the P contributions in rank
  // order, ((x_0 + x_1) + x_2) + ..., the same order whatever the placement of the ranks on
  // hosts. Each rank sends and adds (P-1)/P of the data once, as a ring would (the library's
  // MPI_Reduce_scatter was slower than a whole allreduce for large blocks here).
  const int P = size_, r = rank_;
  auto* base = static_cast<char*>(data);
  const auto count = [&](int b) { return static_cast<std::size_t>(offsets[b + 1] - offsets[b]); };
  const auto at = [&](int b) { return base + static_cast<std::size_t>(offsets[b]) * elem; };
  const std::size_t own = count(r), step = kMaxChunk / elem;
  const MPI_Datatype type = mpi_type(dtype);
  const MPI_Op mop = mpi_op(op);
  std::vector<MPI_Request> sends;
  for (int q = 0; q < P; ++q) {
    if (q == r) continue;
    for (std::size_t o = 0; o < count(q); o += step) {
      sends.push_back(MPI_REQUEST_NULL);
      check_mpi(MPI_Isend(at(q) + o * elem, static_cast<int>(std::min(step, count(q) - o)), type, q,
                          0, as_mpi(handle_), &sends.back()),
                "MPI_Isend");
    }
  }
  // (x + y) == (y + x) exactly, so ranks 0 and 1 can sum in place into their own block;
  // later ranks add into `acc` and copy at the end.
  std::vector<char> tmp(own * elem), acc(r >= 2 ? own * elem : 0);
  char* sum = r >= 2 ? acc.data() : at(r);
  std::vector<MPI_Request> recvs;
  for (int s = 0; s < P; ++s) {
    const char* term = at(r);
    if (s != r) {
      recvs.clear();
      for (std::size_t o = 0; o < own; o += step) {
        recvs.push_back(MPI_REQUEST_NULL);
        check_mpi(MPI_Irecv(tmp.data() + o * elem, static_cast<int>(std::min(step, own - o)), type,
                            s, 0, as_mpi(handle_), &recvs.back()),
                  "MPI_Irecv");
      }
      check_mpi(MPI_Waitall(static_cast<int>(recvs.size()), recvs.data(), MPI_STATUSES_IGNORE),
                "MPI_Waitall");
      term = tmp.data();
    }
    if (s == 0 && r != 1) {  // the first term (r = 1 adds x_0 to its own block instead)
      if (sum != term) std::memcpy(sum, term, own * elem);
      continue;
    }
    if (s == r && r <= 1) continue;  // already in place (r = 1: x_0 was added to x_1)
    for (std::size_t o = 0; o < own; o += step)
      check_mpi(MPI_Reduce_local(term + o * elem, sum + o * elem,
                                 static_cast<int>(std::min(step, own - o)), type, mop),
                "MPI_Reduce_local");
  }
  if (r >= 2 && own) std::memcpy(at(r), acc.data(), own * elem);
  check_mpi(MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall");
}

void Comm::allgather_blocks_raw(void* data, std::span<const std::int64_t> offsets, int dtype,
                                std::size_t elem) const {
  check_block_offsets("allgather_blocks", offsets);
  if (!handle_) return;
  auto* base = static_cast<char*>(data);
  const auto total = static_cast<std::size_t>(offsets[size_] - offsets[0]);
  if (total == 0) return;
  stats_->gather_calls++;
  stats_->gather_bytes +=
      static_cast<std::size_t>(offsets[rank_ + 1] - offsets[rank_]) * elem * (size_ - 1);
  const watchdog::InFlight wd(watchdog::Kind::kAllgather, total * elem);
  if (total * elem <= kMaxChunk) {
    std::vector<int> counts(static_cast<std::size_t>(size_)), displs(counts.size());
    for (int r = 0; r < size_; ++r) {
      counts[r] = static_cast<int>(offsets[r + 1] - offsets[r]);
      displs[r] = static_cast<int>(offsets[r] - offsets[0]);
    }
    check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base + offsets[0] * elem,
                             counts.data(), displs.data(), mpi_type(dtype), as_mpi(handle_)),
              "MPI_Allgatherv");
    return;
  }
  // Over 1 GiB: one chunked broadcast per rank.
  for (int r = 0; r < size_; ++r)
    bcast_chunked(base + static_cast<std::size_t>(offsets[r]) * elem,
                  static_cast<std::size_t>(offsets[r + 1] - offsets[r]) * elem, r, as_mpi(handle_));
}

ValueIndex Comm::allreduce_maxloc(ValueIndex v) const {
  // Two reductions keep the tie rule exact and the index 64-bit.
  const double best = allreduce_value(v.value, Op::kMax);
  const std::int64_t idx = v.value == best ? v.index : INT64_MAX;
  return {best, allreduce_value(idx, Op::kMin)};
}

std::int64_t Comm::exscan_sum(std::int64_t v) const {
  if (!handle_) return 0;
  std::int64_t out = 0;
  stats_->allreduce_calls++;
  stats_->allreduce_bytes += sizeof v;
  const watchdog::InFlight wd(watchdog::Kind::kScan, sizeof v);
  check_mpi(MPI_Exscan(&v, &out, 1, MPI_INT64_T, MPI_SUM, as_mpi(handle_)), "MPI_Exscan");
  return rank_ == 0 ? 0 : out;
}

void Comm::broadcast_raw(void* data, std::size_t bytes, int root) const {
  if (!handle_ || bytes == 0) return;
  stats_->bcast_calls++;
  if (rank_ == root) stats_->bcast_bytes += bytes;
  const watchdog::InFlight wd(watchdog::Kind::kBroadcast, bytes);
  bcast_chunked(static_cast<char*>(data), bytes, root, as_mpi(handle_));
}

void Comm::broadcast(std::string& s, int root) const {
  std::uint64_t n = s.size();
  broadcast(std::span<std::uint64_t>(&n, 1), root);
  s.resize(n);
  broadcast_raw(s.data(), n, root);
}

std::vector<char> Comm::allgatherv_raw(const void* data, std::size_t bytes,
                                       std::vector<std::int64_t>& counts) const {
  if (!handle_) {
    counts.assign(1, static_cast<std::int64_t>(bytes));
    const auto* p = static_cast<const char*>(data);
    return std::vector<char>(p, p + bytes);
  }
  stats_->gather_calls++;
  stats_->gather_bytes += bytes * static_cast<std::uint64_t>(size_ - 1);
  const watchdog::InFlight wd(watchdog::Kind::kAllgather, bytes);
  counts.assign(size_, 0);
  auto mine = static_cast<std::int64_t>(bytes);
  check_mpi(MPI_Allgather(&mine, 1, MPI_INT64_T, counts.data(), 1, MPI_INT64_T, as_mpi(handle_)),
            "MPI_Allgather");
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  std::vector<char> out(static_cast<std::size_t>(total));
  if (total <= INT_MAX) {
    std::vector<int> c(size_), d(size_);
    for (int r = 0, off = 0; r < size_; ++r) {
      c[r] = static_cast<int>(counts[r]);
      d[r] = off;
      off += c[r];
    }
    check_mpi(MPI_Allgatherv(data, static_cast<int>(bytes), MPI_BYTE, out.data(), c.data(),
                             d.data(), MPI_BYTE, as_mpi(handle_)),
              "MPI_Allgatherv");
    return out;
  }
  // Over 2 GiB in total: one chunked broadcast per rank.
  std::size_t off = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ && bytes) std::memcpy(out.data() + off, data, bytes);
    bcast_chunked(out.data() + off, static_cast<std::size_t>(counts[r]), r, as_mpi(handle_));
    off += static_cast<std::size_t>(counts[r]);
  }
  return out;
}

std::vector<std::string> Comm::allgather_strings(const std::string& s) const {
  std::vector<std::int64_t> counts;
  std::vector<char> flat = allgatherv(std::span<const char>(s.data(), s.size()), &counts);
  std::vector<std::string> out;
  std::size_t off = 0;
  for (auto c : counts) {
    out.emplace_back(flat.data() + off, static_cast<std::size_t>(c));
    off += static_cast<std::size_t>(c);
  }
  return out;
}

std::vector<char> Comm::alltoallv_raw(const std::vector<std::span<const char>>& send,
                                      std::vector<std::int64_t>& recv_counts) const {
  std::vector<char> out;
  alltoallv_into(send, recv_counts, [&](std::size_t bytes) {
    out.resize(bytes);
    return out.data();
  });
  return out;
}

void Comm::alltoallv_into(const std::vector<std::span<const char>>& send,
                          std::vector<std::int64_t>& recv_counts,
                          const std::function<char*(std::size_t)>& alloc) const {
  SEGREC_ASSERT(static_cast<int>(send.size()) == size_, "alltoallv needs one buffer per rank");
  if (!handle_) {
    recv_counts.assign(1, static_cast<std::int64_t>(send[0].size()));
    char* out = alloc(send[0].size());
    if (!send[0].empty()) std::memcpy(out, send[0].data(), send[0].size());
    return;
  }
  stats_->alltoall_calls++;
  const watchdog::InFlight wd(watchdog::Kind::kAlltoall, 0);
  std::vector<std::int64_t> send_counts(size_);
  for (int r = 0; r < size_; ++r) {
    send_counts[r] = static_cast<std::int64_t>(send[r].size());
    if (r != rank_) stats_->alltoall_bytes += send[r].size();
  }
  recv_counts.assign(size_, 0);
  check_mpi(MPI_Alltoall(send_counts.data(), 1, MPI_INT64_T, recv_counts.data(), 1, MPI_INT64_T,
                         as_mpi(handle_)),
            "MPI_Alltoall");
  std::vector<std::size_t> roff(size_ + 1, 0);
  for (int r = 0; r < size_; ++r) roff[r + 1] = roff[r] + static_cast<std::size_t>(recv_counts[r]);
  char* out = alloc(roff[size_]);
  // Pairwise rounds: no packed copy of the send side, no int overflow; each
  // message is cut into chunks of at most 1 GiB.
  for (int step = 0; step < size_; ++step) {
    const int to = (rank_ + step) % size_;
    const int from = (rank_ - step + size_) % size_;
    const std::size_t ns = send[to].size(), nr = static_cast<std::size_t>(recv_counts[from]);
    const std::size_t rounds = std::max<std::size_t>(
        1, std::max((ns + kMaxChunk - 1) / kMaxChunk, (nr + kMaxChunk - 1) / kMaxChunk));
    for (std::size_t i = 0; i < rounds; ++i) {
      const std::size_t o = i * kMaxChunk;
      const int sn = o < ns ? static_cast<int>(std::min(kMaxChunk, ns - o)) : 0;
      const int rn = o < nr ? static_cast<int>(std::min(kMaxChunk, nr - o)) : 0;
      check_mpi(MPI_Sendrecv(send[to].data() + (sn ? o : 0), sn, MPI_BYTE, to, 7,
                             out + roff[from] + (rn ? o : 0), rn, MPI_BYTE, from, 7,
                             as_mpi(handle_), MPI_STATUS_IGNORE),
                "MPI_Sendrecv");
    }
  }
}

void Comm::check_all(const std::string& local_error, int code) const {
  const int failing = local_error.empty() ? size_ : rank_;
  const int first = allreduce_value(failing, Op::kMin);
  if (first == size_) return;
  std::string msg = local_error;
  int c = code;
  broadcast(msg, first);
  broadcast(std::span<int>(&c, 1), first);
  switch (c) {
    case kExitUsage:
      throw UsageError(msg, true);
    case kExitData:
      throw DataError(msg, true);
    case kExitIo:
      throw IoError(msg, true);
    default:
      throw Error(msg, c, true);
  }
}

Block block_partition(std::int64_t n, int parts, int part) {
  const std::int64_t q = n / parts, r = n % parts;
  const std::int64_t b = part * q + std::min<std::int64_t>(part, r);
  return {b, b + q + (part < r ? 1 : 0)};
}

}  // namespace segrec
