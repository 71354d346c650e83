package hub

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/synchub/synchub/metrics"
)

// lagBytesGauge reads the source-lag-bytes gauge's current value.
func lagBytesGauge(m *metrics.Hub) float64 {
	var out dto.Metric
	if err := m.SourceLagBytes.Write(&out); err != nil || out.Gauge == nil {
		return 0
	}
	return out.Gauge.GetValue()
}
