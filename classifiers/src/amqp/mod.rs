//! `amqp`: not written yet (issue 3).
