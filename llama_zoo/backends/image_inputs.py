"""Image + text inputs for vision models whose checkpoint brings no processor (shadow and random
weights): built from the vision config the model was built from (the registry's; shrunk, for a
shadow) and the run's tokenizer.

- Mllama (Llama 3.2 Vision): transformers' own processor (the PIL image processor, so torchvision
  is not needed) at the registry's tile size and tile count. The text keeps one ``<|image|>`` token;
  the image reaches the text through cross-attention.
- Llama 4: early fusion. The image is resized without distortion to the best canvas of up to
  ``LLAMA4_MAX_TILES`` square tiles, padded, cut into tiles, and (when there is more than one
  tile) followed by a global tile of the whole image. Each tile becomes ``<|patch|>`` tokens in
  the text, between ``<|image_start|>`` and ``<|image_end|>``, tiles separated by
  ``<|tile_x_separator|>`` within a row and ``<|tile_y_separator|>`` after each row, the global
  tile after ``<|image|>``: the layout transformers' Llama 4 processor writes. That processor
  needs torchvision, which has no CPU build for this torch, so the tiling is written here.

Both processors are called as transformers' are: ``processor(images=..., text=[...],
return_tensors="pt")``, Mllama's images one list per prompt.
"""

from __future__ import annotations

from typing import Any

from llama_zoo.backends.base import BackendError

# transformers' Llama 4 image processor default (``max_patches``): tiles per image at most
LLAMA4_MAX_TILES = 16
# Llama 3.2 Vision's image normalisation (its preprocessor config: OpenAI CLIP's mean and std)
MLLAMA_MEAN = (0.48145466, 0.4578275, 0.40821073)
MLLAMA_STD = (0.26862954, 0.26130258, 0.27577711)


def config_processor(config: Any, tokenizer: Any):
    """A processor for a model built from the transformers ``config`` (its ``vision_config`` says
    the tile size), with ``tokenizer``; a clear error when the tokenizer lacks the image tokens."""
    if config.model_type == "mllama":
        return _mllama_processor(config.vision_config, tokenizer)
    if config.model_type == "llama4":
        return Llama4Inputs(config.vision_config, tokenizer)
    raise BackendError(f"no image inputs for model type {config.model_type!r}")


def _mllama_processor(vision: Any, tokenizer: Any):
    from transformers import MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    _require_tokens(tokenizer, ["<|image|>"])
    images = MllamaImageProcessorPil(size={"height": vision.image_size, "width": vision.image_size},
                                     max_image_tiles=vision.max_num_tiles, image_mean=list(MLLAMA_MEAN),
                                     image_std=list(MLLAMA_STD))
    return MllamaProcessor(image_processor=images, tokenizer=tokenizer)


def _require_tokens(tokenizer: Any, names: list[str]) -> None:
    vocab = tokenizer.get_vocab()
    missing = [n for n in names if n not in vocab]
    if missing:
        raise BackendError(f"the tokenizer has no {', '.join(missing)}: image prompts need the model's own "
                          "tokenizer (or none, for the stand-in that has every registry token)")


class Llama4Inputs:
    """Llama 4's early-fusion inputs (see the module docstring)."""

    def __init__(self, vision: Any, tokenizer: Any, max_tiles: int = LLAMA4_MAX_TILES):
        _require_tokens(tokenizer, ["<|image|>", "<|patch|>", "<|image_start|>", "<|image_end|>",
                                    "<|tile_x_separator|>", "<|tile_y_separator|>"])
        v = vision
        self.tokenizer = tokenizer
        self.tile = v.image_size
        self.max_tiles = max_tiles
        # pixel shuffle folds ratio^-2 patches into one token
        self.patches_per_tile = (v.image_size // v.patch_size) ** 2 // round(1 / v.pixel_shuffle_ratio ** 2)
        self.canvases = supported_canvases(max_tiles, v.image_size)

    def __call__(self, images: list, text: list[str], return_tensors: str = "pt", **_: Any) -> dict[str, Any]:
        import torch

        if len(images) != len(text) or any(t.count("<|image|>") != 1 for t in text):
            raise BackendError("each Llama 4 image prompt needs exactly one <|image|> and one image")
        tiles, prompts = [], []
        for image, prompt in zip(images, text):
            pixels, grid = self.tiles_of(image)
            tiles.append(pixels)
            bos = self.tokenizer.bos_token or ""
            prompt = prompt if prompt.startswith(bos) else bos + prompt  # as Mllama's processor does
            prompts.append(prompt.replace("<|image|>", self.image_text(grid), 1))
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "pixel_values": torch.cat(tiles)}

    def image_text(self, grid: tuple[int, int]) -> str:
        rows, cols = grid
        patches = "<|patch|>" * self.patches_per_tile
        text = "<|image_start|>"
        if rows * cols > 1:
            for _ in range(rows):
                text += "<|tile_x_separator|>".join([patches] * cols) + "<|tile_y_separator|>"
        return text + "<|image|>" + patches + "<|image_end|>"

    def tiles_of(self, image) -> tuple[Any, tuple[int, int]]:
        """(tiles x 3 x tile x tile normalised pixels, (rows, columns) of tiles)."""
        import numpy as np
        import torch
        from PIL import Image

        image = image.convert("RGB")
        height, width = image.height, image.width
        canvas_h, canvas_w = best_canvas((height, width), self.canvases)
        # never upscale past one tile's side (unless the image is smaller than a tile)
        limit_h = min(max(height, self.tile), canvas_h)
        limit_w = min(max(width, self.tile), canvas_w)
        new_h, new_w = fit_without_distortion((height, width), (limit_h, limit_w))
        resized = image.resize((max(new_w, 1), max(new_h, 1)), Image.BILINEAR)
        canvas = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)  # padding right and below, black
        canvas[:resized.height, :resized.width] = np.asarray(resized)
        rows, cols = canvas_h // self.tile, canvas_w // self.tile
        pixels = _normalise(canvas)  # 3 x H x W
        tiles = pixels.reshape(3, rows, self.tile, cols, self.tile).transpose(1, 3, 0, 2, 4)
        tiles = tiles.reshape(rows * cols, 3, self.tile, self.tile)
        if rows * cols > 1:
            whole = _normalise(np.asarray(image.resize((self.tile, self.tile), Image.BILINEAR)))
            tiles = np.concatenate([tiles, whole[None]])
        return torch.from_numpy(np.ascontiguousarray(tiles)), (rows, cols)


def _normalise(pixels):
    """uint8 H x W x 3 to 3 x H x W with Llama 4's mean and std of 0.5: [-1, 1]."""
    import numpy as np

    return (pixels.astype(np.float32) / 255.0 - 0.5).transpose(2, 0, 1) / 0.5


def supported_canvases(max_tiles: int, tile: int) -> list[tuple[int, int]]:
    """Every (height, width) made of rows x columns tiles with rows * columns <= max_tiles."""
    return [(rows * tile, cols * tile) for n in range(max_tiles, 0, -1)
            for rows in range(1, n + 1) if n % rows == 0 for cols in [n // rows]]


def best_canvas(size: tuple[int, int], canvases: list[tuple[int, int]]) -> tuple[int, int]:
    """The canvas needing the least upscaling (or, when every one needs downscaling, the least
    downscaling) to hold the image without distortion; the smallest such canvas on ties."""
    height, width = size
    scales = [min(h / height, w / width) for h, w in canvases]
    up = [s for s in scales if s >= 1]
    chosen = min(up) if up else max(scales)
    return min((c for c, s in zip(canvases, scales) if s == chosen), key=lambda c: c[0] * c[1])


def fit_without_distortion(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The largest (height, width) inside ``target`` with the image's aspect ratio."""
    import math

    height, width = size
    target_h, target_w = target
    if target_w / width < target_h / height:
        return min(math.floor(height * target_w / width), target_h), target_w
    return target_h, min(math.floor(width * target_h / height), target_w)
