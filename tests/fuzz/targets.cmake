# The fuzz targets and the library each one's code lives in: one list for the clang fuzz
# build (tests/fuzz/CMakeLists.txt) and the gcc replay of its inputs (tests/CMakeLists.txt).
set(BW_FUZZ_TARGETS stripe_sig usage_event stripe_event sync_tick)
set(BW_FUZZ_LIBS_stripe_sig bw_shared)
set(BW_FUZZ_LIBS_usage_event bw_usage_logic)
set(BW_FUZZ_LIBS_stripe_event bw_stripe_logic)
set(BW_FUZZ_LIBS_sync_tick bw_sync_logic)
