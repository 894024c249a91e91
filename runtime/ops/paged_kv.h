// Paged key/value storage ops: writing new rows and gathering (compacting) rows (runtime/ops).
// The block layout they share: runtime/args/paged_kv.h.
#pragma once

#include "runtime/args/paged_kv.h"
#include "runtime/ops/rope.h"
#include "runtime/recorder.h"

namespace kvz {

// KvWriteArgs, KvGatherArgs and the layout: runtime/args/paged_kv.h.
void kv_write(Recorder& rec, const KvWriteArgs& args);

void kv_gather(Recorder& rec, const KvGatherArgs& args);

}  // namespace kvz
