-- 0011: the console's pay-method filter pages by its own range too, like status and team (0010).
CREATE INDEX orders_method_created ON orders (pay_method, created_at, order_id);
