tessera_add_mpi_test(pipeline_test NP 4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/pipeline_test.cpp)
# The same binary on 2 ranks (pp2).
add_test(NAME pipeline_test_np2
  COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:pipeline_test>)
set_tests_properties(pipeline_test_np2 PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 300
  PROCESSORS 2 LABELS mpi)
