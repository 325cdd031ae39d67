/* A UDF library built for another ABI version: workers must refuse it by name. Used by
 * tests/integration/test_dataflow_worker.py. */
#include <stdint.h>

uint32_t flinc_udf_abi_version(void);

uint32_t flinc_udf_abi_version(void) {
        return 999;
}
