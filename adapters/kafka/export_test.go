package kafka

import ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

// InjectFatalError makes librdkafka raise a fatal error on p's producer, as
// an idempotence failure would.
func InjectFatalError(p *Publisher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prod.TestFatalError(ckafka.ErrOutOfOrderSequenceNumber, "injected by a test")
}

// ProducerOf returns p's current producer, to see it replaced.
func ProducerOf(p *Publisher) any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prod
}

// ChannelCapacities returns the capacities of the Go channels
// confluent-kafka-go allocated for p's producer.
func ChannelCapacities(p *Publisher) (events, produce int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cap(p.prod.Events()), cap(p.prod.ProduceChannel()) //nolint:staticcheck // SA1019: measures the channel the client still allocates, unused by us
}
