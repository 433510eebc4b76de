package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Figure declares a metric read at scrape time rather than recorded.
type Figure struct {
	Name, Help string
	Labels     []string
	// Counter marks a figure that only grows (activations since start);
	// otherwise it is a gauge.
	Counter bool
}

// Emit reports one sample of a figure named in the set being read.
type Emit func(name string, value float64, labelValues ...string)

// Figures registers a set read together: read is called once per scrape
// and emits the samples of figures (one call reading the node's status
// serves every figure it holds). A sample of a name not in figures, or
// with the wrong number of labels, is dropped: a scrape never panics (its
// collectors run on goroutines of their own, where a panic would end the
// node).
func (m *Metrics) Figures(figures []Figure, read func(emit Emit)) {
	c := &figureSet{read: read, descs: map[string]*prometheus.Desc{}, kinds: map[string]prometheus.ValueType{}}
	for _, f := range figures {
		c.descs[f.Name] = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", f.Name), f.Help, f.Labels, nil)
		c.kinds[f.Name] = prometheus.GaugeValue
		if f.Counter {
			c.kinds[f.Name] = prometheus.CounterValue
		}
	}
	m.reg.MustRegister(c)
}

type figureSet struct {
	read  func(Emit)
	descs map[string]*prometheus.Desc
	kinds map[string]prometheus.ValueType
}

func (c *figureSet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *figureSet) Collect(ch chan<- prometheus.Metric) {
	c.read(func(name string, v float64, labels ...string) {
		d := c.descs[name]
		if d == nil {
			return
		}
		if m, err := prometheus.NewConstMetric(d, c.kinds[name], v, labels...); err == nil {
			ch <- m
		}
	})
}
