variable "region" {
  description = "AWS region of the whole environment."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name prefix of every resource (one environment per name)."
  type        = string
  default     = "forewarn-prod"
}

variable "vpc_cidr" {
  description = "CIDR block of the environment's VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Three availability zones: one private and one public subnet in each."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "kubernetes_version" {
  description = "EKS control-plane version."
  type        = string
  default     = "1.33"
}

variable "api_public_access" {
  description = "Open the EKS API endpoint beyond the VPC (to var.api_allowed_cidrs only). Off: operators and the deploy job reach it from inside the VPC (self-hosted runner, VPN or SSM)."
  type        = bool
  default     = false
}

variable "api_allowed_cidrs" {
  description = "CIDRs allowed to reach a public EKS API endpoint (the operators' and the CD runner's egress)."
  type        = list(string)
  default     = []
}

variable "node_instance_type" {
  description = "Instance type of the EKS managed node group."
  type        = string
  default     = "m6i.xlarge"
}

variable "node_count" {
  description = "Desired, minimum and maximum size of the node group."
  type        = object({ desired = number, min = number, max = number })
  default     = { desired = 3, min = 3, max = 6 }
}

variable "kafka_version" {
  description = "MSK Kafka version."
  type        = string
  default     = "3.8.x"
}

variable "kafka_instance_type" {
  description = "MSK broker instance type (one broker per availability zone)."
  type        = string
  default     = "kafka.m7g.large"
}

variable "topic_partitions" {
  description = "Partitions of the project's topics (FOREWARN_KAFKA__TOPIC_PARTITIONS): the useful maximum of features/scorer replicas."
  type        = number
  default     = 12
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (EKS control plane, MSK brokers, VPC flow logs)."
  type        = number
  default     = 365
}

variable "deploy_kubernetes" {
  description = "Apply the k8s/overlays/prod kustomization on the new cluster (false: only the cloud resources)."
  type        = bool
  default     = true
}

variable "image_digests" {
  description = "Digest (sha256:...) per Forewarn service image, as the release workflow pushed them; empty: the prod overlay's tags."
  type        = map(string)
  default     = {}
}

variable "image_registry" {
  description = "Registry and owner of the Forewarn images, e.g. ghcr.io/acme (images are <registry>/forewarn-<service>)."
  type        = string
  default     = "ghcr.io/forewarn"
}
