package pod

import "k8s.io/client-go/tools/cache"

// PodSource is where a Manager finds its node's pods: the part of a
// shared informer the manager uses. A client-go SharedIndexInformer
// implements it. Config.Pods lets a process that hosts many nodes
// (kubeletish/hollow) feed every node's manager from one pod watch
// instead of one watch per node.
//
// A source holds only the node's own pods (spec.nodeName = NodeName). Its
// indexer is the manager's cache: the manager adds its indexers before it
// adds its handler, and handlers are called, one event at a time, after
// the indexer reflects the event, as a shared informer does.
type PodSource interface {
	AddIndexers(cache.Indexers) error
	GetIndexer() cache.Indexer
	AddEventHandler(cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error)
	HasSynced() bool
}

var _ PodSource = cache.SharedIndexInformer(nil)
