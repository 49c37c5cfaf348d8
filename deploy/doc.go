// Package deploy holds the deployment assets of usersvc (Dockerfile,
// compose.yaml, k8s/) and, in its tests, the checks that keep them honest:
// every YAML document parses, every environment variable set for the
// service is one the binary reads (adapters/cli) with a value it accepts,
// the probes, the security context and the shutdown budget match what the
// binary does, and the kustomization lists files that exist.
package deploy
