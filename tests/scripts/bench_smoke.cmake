# The usage benchmark (bench/) in a reduced run, so it cannot rot: a few thousand events
# through the real worker (1 and 2 processes), the Python baseline and both ceilings.
# Fails only when the bench breaks (missing results, a process exiting non-zero, CSV columns);
# timings are reported, never asserted.
if(TARGET bw-bench-loadgen AND TARGET bw-usage-worker)
  add_test(NAME integration_bench_smoke
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench_smoke.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set_tests_properties(integration_bench_smoke PROPERTIES LABELS integration TIMEOUT 180)
endif()
