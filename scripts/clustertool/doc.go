// Command clustertool is what scripts/cluster needs beyond the shell: free
// loopback ports, registering the Temporal namespace on the upstream server
// (it creates none but its system namespace) and waiting for a worker's
// /healthz. It is not part of the huabu binary.
package main
