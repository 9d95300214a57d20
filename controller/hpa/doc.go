// Package hpa is the HorizontalPodAutoscaler loop (autoscaling/v2): every
// sync period it reads the pods' usage from the resource metrics API
// (metrics.k8s.io), proposes a replica count per metric with Kubernetes'
// algorithm, stabilizes and rate-limits it by the HPA's behavior, sets the
// target's replicas through its scale subresource, records an Event for
// each rescale and reports status and conditions. decide.go is the pure
// calculation; hpa.go reads and writes.
package hpa
