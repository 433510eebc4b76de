// Package api is the public contract of oms: the request-reply subjects and
// their payloads (each request with a Validate method that names the bad
// field), the provider events oms consumes, the messages it publishes, and
// the one error table every transport maps errors through. Every type here
// is JSON with camelCase names, as the README documents.
//
// It may import the domain (order, inventory) and nats.go's error values,
// nothing else of oms.
package api

// ServiceName is the nats.go/micro service name (`nats micro info oms`).
const ServiceName = "oms"

// Request-reply subjects.
const (
	SubjectOrdersPlace  = "oms.orders.place"
	SubjectOrdersGet    = "oms.orders.get"
	SubjectOrdersCancel = "oms.orders.cancel"
	SubjectOrdersUpdate = "oms.orders.update"
	SubjectStockSet     = "oms.stock.set"
	SubjectStockGet     = "oms.stock.get"
	SubjectStatus       = "oms.status"

	SubjectOrdersList          = "oms.orders.list"
	SubjectOrdersChanges       = "oms.orders.changes"
	SubjectAnalyticsSummary    = "oms.analytics.summary"
	SubjectAnalyticsPromotions = "oms.analytics.promotions"
	SubjectAdminRebuild        = "oms.admin.rebuild"
	SubjectAdminJobsGet        = "oms.admin.jobs.get"
	SubjectDeadLettersList     = "oms.admin.deadletters.list"
	SubjectDeadLettersRetry    = "oms.admin.deadletters.retry"
	SubjectDeadLettersDrop     = "oms.admin.deadletters.drop"
	SubjectClusterStatus       = "oms.cluster.status"
)
