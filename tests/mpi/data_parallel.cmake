tessera_add_mpi_test(data_parallel_test NP 4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/data_parallel_test.cpp)
# The same binary on 2 ranks (dp2).
add_test(NAME data_parallel_test_np2
  COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:data_parallel_test>)
set_tests_properties(data_parallel_test_np2 PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 300
  PROCESSORS 2 LABELS mpi)
