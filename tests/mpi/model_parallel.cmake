tessera_add_mpi_test(model_parallel_test NP 4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/model_parallel_test.cpp)
# The same binary on 2 ranks (tp2) and on 8 (tp2·pp2·dp2).
foreach(np 2 8)
  add_test(NAME model_parallel_test_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${np} $<TARGET_FILE:model_parallel_test>)
  set_tests_properties(model_parallel_test_np${np} PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 600
    PROCESSORS 2 LABELS mpi)
endforeach()
