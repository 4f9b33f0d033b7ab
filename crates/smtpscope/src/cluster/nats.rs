//! The NATS JetStream runtime of the cluster roles (edge, worker, alert sink, containment
//! bucket).
