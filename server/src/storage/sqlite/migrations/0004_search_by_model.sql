-- A search with words and a model filter walks this model's videos newest first and checks
-- each against the prompt matches, so a model with few videos (or none) costs little however
-- common the words are.
CREATE INDEX videos_by_model ON videos (model, sort_key);
