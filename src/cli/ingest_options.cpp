#include "ingest_options.hpp"

namespace segrec::cli {

void add_ingest_read_options(po::options_description& d, IngestParams& p, bool filters) {
  d.add_options()("format", po::value(&p.format)->default_value(p.format),
                  "auto | movielens (u.data, ratings.dat, ratings.csv)")(
      "no-header", po::bool_switch(&p.no_header), "files have no header line (needs --columns)")(
      "columns", po::value(&p.columns), "column names of header-less files, in order")(
      "delimiter", po::value(&p.delimiter),
      "field delimiter: , tab ; | or :: (default: detected from the first line)")(
      "col-user", po::value(&p.col_user), "header name of the user column")(
      "col-item", po::value(&p.col_item), "header name of the item column")(
      "col-event", po::value(&p.col_event), "header name of the event-type column")(
      "col-time", po::value(&p.col_time), "header name of the timestamp column")(
      "col-value", po::value(&p.col_value),
      "header name of the value column (e.g. a rating, dwell seconds or a quantity)")(
      "col-price", po::value(&p.col_price),
      "header name of the unit-price column (number >= 0; empty = unknown)")(
      "col-item-name", po::value(&p.col_item_name), "header name of the item-name column")(
      "col-category", po::value(&p.col_category), "header name of the item-category column")(
      "event-name", po::value(&p.event_name),
      "event type of rows without one (default: interaction; rating for movielens)")(
      "event-weight", po::value(&p.event_weights)->composing(),
      "NAME=W weight of an event type (repeatable); defaults: view/pv/click 1, "
      "cart/add_to_cart/fav/favorite 3, purchase/buy/transaction 5, rate/rating 1")(
      "default-event-weight",
      po::value(&p.default_event_weight)->default_value(p.default_event_weight),
      "weight of other event types (they are listed in the report)")(
      "fill-value", po::value(&p.fill_values)->composing(),
      "NAME=V value filled in where a row of that type has none "
      "(default: the type's mean value, or 0)")(
      "min-value", po::value(&p.min_value),
      "keep only rows whose value is at least this (e.g. 4 to binarise ratings)")(
      "max-bad-fraction", po::value(&p.max_bad_fraction)->default_value(p.max_bad_fraction),
      "fail when a larger share of rows is malformed");
  if (filters)
    d.add_options()("min-user-events",
                    po::value(&p.min_user_events)->default_value(p.min_user_events),
                    "drop users with fewer events")(
        "min-item-users", po::value(&p.min_item_users)->default_value(p.min_item_users),
        "drop items with fewer distinct users");
  d.add_options()("max-line-bytes", po::value(&p.max_line_bytes)->default_value(p.max_line_bytes),
                  "longer lines are malformed")("examples",
                                                po::value(&p.examples)->default_value(p.examples),
                                                "malformed rows shown in the report");
}

}  // namespace segrec::cli
