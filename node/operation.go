package node

import (
	"context"
	"net/http"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// operations are the node's own operations: its status, the cluster's, and
// the rebuilds of its local state.
func (n *Node) operations() []endpoint.Operation {
	none := func(context.Context, auth.Principal, *struct{}) (api.StatusRequest, error) {
		return api.StatusRequest{}, nil
	}
	status := endpoint.New("status", api.SubjectStatus, func(ctx context.Context, _ api.StatusRequest) (api.Status, error) {
		return n.status(ctx)
	})
	endpoint.Bind(status, endpoint.Staff(http.MethodGet, "/v1/status", "orders by status, read-model lag and live actors of the node answering"), none)
	clusterOp := endpoint.New("cluster_status", api.SubjectClusterStatus, n.clusterStatus)
	endpoint.Bind(clusterOp, endpoint.Staff(http.MethodGet, "/v1/cluster", "members, the partitions each owns, and the streams' replicas"), none)
	rebuild := endpoint.New("admin_rebuild", api.SubjectAdminRebuild, n.rebuild)
	endpoint.Bind(rebuild, endpoint.Staff(http.MethodPost, "/v1/admin/rebuild",
		"start rebuilding the read model or the snapshots of the node answering (a background job)", auth.RoleAdmin),
		func(_ context.Context, _ auth.Principal, in *struct{ Body api.Rebuild }) (api.Rebuild, error) {
			return in.Body, nil
		})
	job := endpoint.New("admin_jobs_get", api.SubjectAdminJobsGet, func(ctx context.Context, req api.GetJob) (api.Job, error) {
		return n.jobs.get(ctx, req.ID)
	})
	endpoint.Bind(job, endpoint.Staff(http.MethodGet, "/v1/admin/jobs/{id}", "where a background job of any node stands", auth.RoleAdmin),
		func(_ context.Context, _ auth.Principal, in *jobInput) (api.GetJob, error) {
			return api.GetJob{ID: in.ID}, nil
		})
	return append([]endpoint.Operation{status, clusterOp, rebuild, job}, n.deadLetterOperations()...)
}

// Status summarises the node: orders by status, read-model lag, live actors.
func (n *Node) Status() (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return n.status(ctx)
}

func (n *Node) status(ctx context.Context) (api.Status, error) {
	st := api.Status{Node: n.cfg.NodeName, Roles: n.cfg.Roles, Partitions: n.cfg.Partitions, Orders: map[string]int64{}}
	if n.commands != nil {
		st.ActiveOrder, st.ActiveSKU = n.commands.Active()
	}
	if n.queries != nil {
		counts, rm, err := n.queries.ReadModel(ctx)
		if err != nil {
			return st, err
		}
		st.Orders, st.ReadModel = counts, rm
	}
	return st, nil
}

// ClusterStatus returns the live members and the partitions each owns, as
// this node sees them.
func (n *Node) ClusterStatus() api.ClusterStatus {
	cs := n.cluster.Status()
	st := api.ClusterStatus{Node: cs.Self, Partitions: cs.Partitions}
	for _, m := range cs.Members {
		st.Members = append(st.Members, api.ClusterMember{Name: m.Name, Started: m.Started, Roles: m.Roles, Partitions: m.Owns})
	}
	return st
}

// clusterStatus is ClusterStatus with where each stream's replicas are.
func (n *Node) clusterStatus(ctx context.Context, _ api.StatusRequest) (api.ClusterStatus, error) {
	st := n.ClusterStatus()
	for _, name := range []string{jetstream.StreamOrders, jetstream.StreamSKUs, jetstream.StreamInbound, jetstream.StreamOutbox} {
		s, err := n.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info := s.CachedInfo()
		r := api.StreamReplica{Stream: name, Replicas: []string{}, Current: []string{}}
		if c := info.Cluster; c != nil {
			r.Leader = c.Leader
			r.Replicas = append(r.Replicas, c.Leader)
			r.Current = append(r.Current, c.Leader)
			for _, p := range c.Replicas {
				r.Replicas = append(r.Replicas, p.Name)
				if p.Current {
					r.Current = append(r.Current, p.Name)
				}
			}
		}
		st.Streams = append(st.Streams, r)
	}
	return st, nil
}

// jobInput names a job in a path.
type jobInput struct {
	ID string `path:"id" maxLength:"64" doc:"the job's ID, as the rebuild answered"`
}

// rebuild starts dropping the read model or the snapshots and rebuilding
// them, as a background job of this node: the reply is the job, which
// oms.admin.jobs.get follows. A rebuild ends with the node.
func (n *Node) rebuild(_ context.Context, req api.Rebuild) (api.Job, error) {
	switch {
	case req.What == api.RebuildReadModel && n.queries != nil:
		return n.jobs.start(req.What, func(ctx context.Context, progress func(done, total uint64)) (api.RebuildReport, error) {
			return n.queries.RebuildReadModel(ctx, n.cfg.NodeName, progress)
		})
	case req.What == api.RebuildSnapshots && n.commands != nil:
		return n.jobs.start(req.What, func(ctx context.Context, progress func(done, total uint64)) (api.RebuildReport, error) {
			return n.commands.RebuildSnapshots(ctx, n.cfg.NodeName, progress)
		})
	}
	role := config.RoleQuery
	if req.What == api.RebuildSnapshots {
		role = config.RoleCommand
	}
	return api.Job{}, &order.ValidationError{Field: "what", Message: "this node does not run the " + role + " role"}
}
