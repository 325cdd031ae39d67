/* Clocks: the monotonic clock for every deadline, lease and timeout; wall time only for
 * what people read (logs, REST timestamps). */
#pragma once

#include <stdint.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
int64_t clock_wall_ms(void);
/* Wall time in microseconds (latency markers, which cross processes). */
int64_t clock_wall_us(void);
