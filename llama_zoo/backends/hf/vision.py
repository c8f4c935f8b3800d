"""Image + text generation with transformers: the checkpoint's processor (or ``image_inputs`` for
shadow and random weights), Mllama through ``generate``, and Llama 4's early fusion done here."""

from __future__ import annotations

from typing import Any, Sequence

from llama_zoo.backends.base import Generation, GenerateWithImageRequest, BackendError, cut_at_stop
from llama_zoo.backends.hf.common import without_autograd

# image prompts per generate call (each holds its tiles' pixels besides its tokens)
_IMAGE_BATCH = 8



class Seeing:
    """``HFBackend``'s ``generate_with_image``; the runner sets what it reads (spec, source, model,
    tokenizer, device, dtype, batch_size) and offers ``_pad_id``."""

    spec: Any
    source: Any
    model: Any
    tokenizer: Any
    device: str
    dtype: Any
    batch_size: int | None

    @without_autograd
    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]:
        """Image + text: the checkpoint's own processor places the image tokens and tiles (shadow
        and random weights: one built from the registry, see ``image_inputs``). Greedy requests
        with the same settings are batched (left-padded); a sampled request runs alone, so its seed
        alone decides its draws."""
        if self.spec.capabilities.vision is None:
            raise BackendError(f"{self.spec.id} has no vision encoder")
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[Any, list[int]] = {}
        for i, req in enumerate(requests):
            g = req.generation
            key = (g.max_new_tokens, g.n, g.stop_token_ids) if g.temperature == 0 else ("alone", i)
            groups.setdefault(key, []).append(i)
        for indices in groups.values():
            step = self.batch_size or _IMAGE_BATCH
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                for i, generation in zip(chunk, self._generate_images([requests[i] for i in chunk])):
                    out[i] = generation
        return out

    def _generate_images(self, requests: list[GenerateWithImageRequest]) -> list[Generation]:
        import torch

        processor = self._processor()
        g = requests[0].generation
        if g.seed is not None:
            torch.manual_seed(g.seed)
        # Mllama's processor takes one list of images per prompt, Llama 4's a flat list
        images = [[r.image] for r in requests] if self.spec.model_type == "mllama" else [r.image for r in requests]
        inputs = processor(images=images, text=[r.prompt for r in requests], padding=True, return_tensors="pt")
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items() if hasattr(v, "to")}
        kwargs: dict[str, Any] = dict(max_new_tokens=g.max_new_tokens, num_return_sequences=g.n,
                                      pad_token_id=self._pad_id(), eos_token_id=list(g.stop_token_ids) or None)
        kwargs.update(dict(do_sample=True, temperature=g.temperature, top_p=g.top_p) if g.temperature > 0
                      else dict(do_sample=False))
        if self.spec.model_type == "llama4":
            generated = self._generate_fused(inputs, kwargs)
        else:
            generated = self.model.generate(**inputs, **kwargs)[:, inputs["input_ids"].shape[1]:]
        out = []
        for r, start in zip(requests, range(0, len(generated), g.n)):
            rows = [_without_padding(seq.tolist(), self._pad_id(), g.stop_token_ids) for seq in generated[start:start + g.n]]
            texts = [cut_at_stop(self.tokenizer.decode(seq, skip_special_tokens=True), r.generation.stop_strings)
                     for seq in rows]
            out.append(Generation(texts=texts, new_tokens=[len(seq) for seq in rows], tokens=rows))
        return out

    def _generate_fused(self, inputs: dict[str, Any], kwargs: dict[str, Any]):
        """Llama 4's early fusion done here: the projected image features replace the ``<|patch|>``
        embeddings, and the text model generates from the embeddings. (transformers 5.24's
        Llama4ForConditionalGeneration.forward reads ``image_outputs`` from an output that has
        none, so generating through it fails.) Returns the new tokens only."""
        model = self.model
        ids = inputs["input_ids"]
        embeddings = model.get_input_embeddings()(ids)
        features = model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True).last_hidden_state
        projected = model.multi_modal_projector(features.reshape(-1, features.shape[-1])).to(embeddings.dtype)
        slots = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeddings)
        if slots.sum() != projected.numel():
            raise BackendError(f"{int(slots.sum()) // embeddings.shape[-1]} image token(s) in the prompt for "
                              f"{projected.shape[0]} image features: the prompt and the image tiles disagree")
        embeddings = embeddings.masked_scatter(slots, projected)
        return model.language_model.generate(inputs_embeds=embeddings, attention_mask=inputs["attention_mask"], **kwargs)

    def _processor(self):
        if getattr(self, "_image_processor", None) is None:
            if self.source.kind in ("hub", "local"):
                from transformers import AutoProcessor

                try:
                    processor = AutoProcessor.from_pretrained(self.source.directory)
                except (OSError, ValueError, ImportError) as exc:
                    raise BackendError(f"cannot load the processor of {self.source.ref}: {exc}") from None
            else:  # shadow and random weights: from the model's own vision config and the run's tokenizer
                from llama_zoo.backends.image_inputs import config_processor

                processor = config_processor(self.model.config, self.tokenizer)
            processor.tokenizer.padding_side = "left"  # generation continues every row from its end
            if processor.tokenizer.pad_token is None:  # the id generate pads finished rows with
                processor.tokenizer.pad_token_id = self._pad_id()
            self._image_processor = processor
        return self._image_processor


def _without_padding(tokens: list[int], pad: int, stops) -> list[int]:
    """A generated row up to and including its first stop id; what generate padded after it goes."""
    for j, token in enumerate(tokens):
        if token in stops:
            return tokens[:j + 1]
    while tokens and tokens[-1] == pad:
        tokens = tokens[:-1]
    return tokens
