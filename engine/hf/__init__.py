"""Hugging Face models: configs per family (`config`), the tensor name and layout map shared by
import, export and the rollout refit (`name_map`), safetensors shards read and written one tensor
at a time (`safetensors_io`), import (`importer`) and export (`exporter`)."""
