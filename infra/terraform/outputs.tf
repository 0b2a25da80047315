output "cluster_name" {
  description = "EKS cluster: `aws eks update-kubeconfig --name <this> --region <region>`."
  value       = aws_eks_cluster.main.name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = aws_eks_cluster.main.endpoint
}

output "kafka_bootstrap_brokers" {
  description = "MSK SASL/SCRAM over TLS bootstrap servers (FOREWARN_KAFKA__BOOTSTRAP_SERVERS)."
  value       = aws_msk_cluster.main.bootstrap_brokers_sasl_scram
}

output "redis_endpoint" {
  description = "ElastiCache primary endpoint (TLS, AUTH token in the forewarn-managed Secret)."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "lake_bucket" {
  description = "S3 bucket of the data lake."
  value       = module.lake.id
}

output "artifacts_bucket" {
  description = "S3 bucket of the MLflow artifacts."
  value       = module.artifacts.id
}

output "kms_key_arn" {
  description = "The environment's KMS key."
  value       = aws_kms_key.main.arn
}
